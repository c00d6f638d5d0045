"""ops/pgbouncer: the config says what ops agreed on, and a real pgbouncer runs with it."""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INI = ROOT / "ops" / "pgbouncer" / "pgbouncer.ini"
PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)


def parse() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(
        comment_prefixes=(";", "#"), inline_comment_prefixes=None, interpolation=None
    )
    cp.read_string(INI.read_text())
    return cp


def test_transaction_pooling_on_loopback_6432() -> None:
    cfg = parse()["pgbouncer"]
    assert cfg["pool_mode"] == "transaction"
    assert cfg["listen_addr"] == "127.0.0.1"
    assert cfg["listen_port"] == "6432"
    assert cfg["admin_users"] == "postgres"
    assert cfg["stats_users"] == "postgres"
    assert "extra_float_digits" in cfg["ignore_startup_parameters"]


def test_fails_fast_and_fits_postgres() -> None:
    cfg = parse()["pgbouncer"]
    assert 1 <= int(cfg["query_wait_timeout"]) <= 10, "an exhausted pool must fail in seconds"
    assert int(cfg["server_login_retry"]) <= 3
    # Server connections stay well under PostgreSQL's max_connections (100 here, 3 reserved).
    assert int(cfg["default_pool_size"]) + int(cfg["reserve_pool_size"]) <= int(
        cfg["max_db_connections"]
    )
    assert int(cfg["max_db_connections"]) <= 50


def test_database_points_at_local_postgres() -> None:
    assert "host=127.0.0.1 port=5432 dbname=momentum" in parse()["databases"]["momentum"]


def test_pgbouncer_section_is_last() -> None:
    """stack.sh appends overrides after `%include`: they land in the last section."""
    assert parse().sections()[-1] == "pgbouncer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.postgres
@pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer not installed (Debian `pgbouncer`)")
@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
def test_real_pgbouncer_starts_with_the_ops_config() -> None:
    if not _postgres_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    # Not pytest's tmp_path: its parents are 0700 root, and pgbouncer runs as postgres.
    tmp_path = Path(tempfile.mkdtemp(prefix="momentum-pgbouncer-"))
    port = _free_port()
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(
        f"%include {INI}\n"
        f"listen_port = {port}\n"
        f"auth_file = {INI.parent / 'userlist.txt'}\n"
        f"logfile = {tmp_path / 'pgbouncer.log'}\n"
        f"pidfile = {tmp_path / 'pgbouncer.pid'}\n"
    )
    argv = [str(PGBOUNCER)]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        argv += ["-u", "postgres"]
        shutil.chown(tmp_path, "postgres")
        tmp_path.chmod(0o755)
    proc = subprocess.Popen([*argv, str(ini)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    psql = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-X", "-A", "-t"]
    try:
        deadline = time.monotonic() + 10
        while True:
            probe = subprocess.run(
                [*psql, "-d", "pgbouncer", "-c", "SHOW CONFIG"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert probe.returncode == 0, probe.stderr
        config = {}
        for line in probe.stdout.splitlines():
            key, _, rest = line.partition("|")
            config[key] = rest.split("|")[0]
        assert config["pool_mode"] == "transaction"
        assert config["query_wait_timeout"] == "3"
        assert config["listen_port"] == str(port)
        # A query through the pool reaches PostgreSQL (database "postgres" via the * entry).
        through = subprocess.run(
            [*psql, "-d", "postgres", "-c", "select 40 + 2"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert through.stdout.strip() == "42", through.stderr
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert b"ERROR" not in out, out.decode()
