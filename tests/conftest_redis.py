"""Pytest plugin: a private ``redis-server`` per test, on a free port, that a test may kill.

Register it in ``tests/conftest.py`` with ``pytest_plugins = ["tests.conftest_redis"]`` (the
repository root is on ``pythonpath``) and ask for the ``redis_server`` fixture::

    async def test_x(redis_server: RedisServer) -> None:
        url = redis_server.url
        redis_server.kill()      # SIGKILL: connections reset, port closed
        redis_server.pause()     # SIGSTOP: port open, nothing answers (timeouts)
        redis_server.resume()
        redis_server.start()     # again, same port, empty data
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One redis-server process without persistence, owned by a test."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _pong(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"redis-server did not start on {self.port}:\n{log}")
            time.sleep(0.005)

    def kill(self) -> None:
        """SIGKILL the server and wait for it: the port refuses connections afterwards."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (calls time out)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh private redis-server for this test, killed afterwards."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server binary not found")
    server = RedisServer(port=free_port(), directory=tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
