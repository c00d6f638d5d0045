"""A private pgbouncer (the ops config, transaction mode) on a free port, for tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.live import free_port

INI = Path(__file__).resolve().parents[1] / "ops" / "pgbouncer" / "pgbouncer.ini"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def start_pgbouncer(
    databases: dict[str, str] | None = None, **overrides: object
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start it; `databases` adds [databases] entries (name -> connection string) to the
    ops config's, `overrides` replace [pgbouncer] settings."""
    tmp = Path(tempfile.mkdtemp(prefix="momentum-pgb-"))  # pgbouncer runs as postgres
    port = free_port()
    lines = [
        f"%include {INI}",
        f"listen_port = {port}",
        f"auth_file = {INI.parent / 'userlist.txt'}",
        f"logfile = {tmp / 'pgbouncer.log'}",
        f"pidfile = {tmp / 'pgbouncer.pid'}",
    ]
    lines += [f"{k} = {v}" for k, v in overrides.items()]
    if databases:
        lines += ["[databases]", *(f"{k} = {v}" for k, v in databases.items())]
    (tmp / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
    argv = [PGBOUNCER]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        argv += ["-u", "postgres"]
        shutil.chown(tmp, "postgres")
        tmp.chmod(0o755)
    proc = subprocess.Popen(
        [*argv, str(tmp / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
        )
        if probe.returncode == 0:
            break
        time.sleep(0.2)
    return proc, port, tmp


def stop(proc: subprocess.Popen[bytes], tmp: Path) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)
