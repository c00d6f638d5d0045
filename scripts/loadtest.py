# ruff: noqa: E501  (markdown rows and report sentences read better unwrapped)
"""`make loadtest`: k6 open-model scenarios against the full stack, with a markdown report.

    python scripts/loadtest.py [--rate 400] [--duration 60] [--write-rate 20] [--no-pairs]
    python scripts/loadtest.py --smoke      # CI: 10 s per script, an app of its own on SQLite

Full run: `scripts/stack.sh` brings the stack up and (re)starts three apps with the load
settings (login and coach limits raised): :8000 cache on through pgbouncer (the production
shape), :8001 cache off, :8002 directly on PostgreSQL. Then, one after the other:
  reads      hot reads (API, page shells, fragments) at --rate on :8000, then on :8001
  mixed      member reads + join/check-in writes with bearer tokens on :8000, then on :8002
  cold_start the read mix right after the app's cache keys (momentum:v1:*) were deleted
  coach      1 conversation every --coach-every, POST then SSE (reported apart)
Each k6 summary goes to loadtests/results/<stamp>-<run>.json (gitignored), the report to
loadtests/results/<stamp>.md and loadtests/results/latest.md. Exits 1 when a k6 threshold
(p95 < 300 ms and < 0.1% failures per endpoint group) breaks on a gating run; --strict also
fails on the stricter targets (reads p95 < 50 ms, no failures, no dropped iterations; writes
p95 < 150 ms). Comparison runs (cache off, direct) are reported, never gating.
Only 127.0.0.1 is ever contacted; every run is bounded by its duration and a timeout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
K6 = ROOT / ".venv" / "bin" / "k6"
RESULTS = ROOT / "loadtests" / "results"
STACK = ROOT / "scripts" / "stack.sh"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
PSQL = shutil.which("psql") or "psql"
COACH_ACCOUNTS = 901  # coach runs log in load-0901 and up; write runs stay below
# Settings for the apps under load: the login limit would stop setup() logging in the load
# accounts; the coach limits would turn repeated conversations into 429s.
LOAD_ENV = {
    "LOGIN_RATE_LIMIT": "100000",
    "COACH_RATE_LIMIT_PER_MINUTE": "10000",
    "COACH_DAILY_TOKEN_BUDGET": "1000000000",
}
GROUPS = ("api_read", "page", "fragment", "api_write", "coach", "coach_stream")
STRICT_READ_P95, STRICT_WRITE_P95 = 50.0, 150.0


@dataclass
class Run:
    name: str
    script: str
    base: str
    label: str  # what the app is: "cache on, pgbouncer", ...
    env: dict[str, str]
    seconds: int
    gating: bool = True
    rate: str = ""
    exit_code: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    server: dict[str, float] = field(default_factory=dict)

    def metric(self, name: str) -> dict[str, Any]:
        return dict(self.summary.get("metrics", {}).get(name, {}))


# ---- helpers -------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[loadtest] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    with urllib.request.urlopen(url, timeout=timeout) as res:  # noqa: S310 - loopback only
        return bytes(res.read())


def post_json(url: str, body: dict[str, Any]) -> int:
    assert url.startswith("http://127.0.0.1:"), url
    req = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:  # noqa: S310
            return int(res.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_ready(base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            get(f"{base}/readyz", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{base} did not become ready within {timeout:.0f}s")


def cpu_busy() -> float:
    """Share of the machine's CPU busy over half a second (all processes, not just ours)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    b0, t0 = sample()
    time.sleep(0.5)
    b1, t1 = sample()
    return (b1 - b0) / max(t1 - t0, 1)


def settle(max_wait: float = 60) -> float:
    """Wait for the apps' start-up work (model warm-up) to finish: CPU below 60% or timeout."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > 0.6 and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def metrics_text(base: str) -> str:
    try:
        return get(f"{base}/metrics").decode()
    except OSError:
        return ""


def metric_sum(text: str, name: str, match: str = "") -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and match in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram(text: str, name: str) -> dict[float, float]:
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """Upper bound of the bucket holding quantile q of what was observed between two scrapes."""
    delta = sorted((b, after.get(b, 0.0) - before.get(b, 0.0)) for b in after)
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return None
    for bound, count in delta:
        if count >= q * total:
            return bound
    return None


# ---- running k6 ----------------------------------------------------------------------------
def fetch_tokens(base: str, count: int, first: int, path: Path) -> str:
    """Log the load accounts in once per app (argon2 makes each login costly); k6 reads the file."""
    tokens = []
    for n in range(first, first + count):
        body = {"email": f"load-{n:04d}@momentum.local", "password": "momentum-load"}
        req = urllib.request.Request(  # noqa: S310 - loopback only
            f"{base}/api/v1/auth/token",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(req, timeout=60) as res:  # noqa: S310
            tokens.append(json.loads(res.read())["token"])
    path.write_text(json.dumps(tokens))
    return str(path)


def accounts_checked_in_today() -> set[int]:
    """Numbers of the load accounts with a check-in today (UTC), from the stack's database."""
    sql = (
        "select distinct substring(u.email from 'load-([0-9]+)@')::int from check_ins c "
        "join users u on u.id = c.user_id where u.email like 'load-%' "
        "and c.day = (now() at time zone 'utc')::date"
    )
    out = subprocess.run(  # noqa: S603 - fixed query on the local stack's database
        [PSQL, "-h", "127.0.0.1", "-U", "postgres", "-d", "momentum", "-Atc", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return {int(n) for n in out.split()}


def fresh_accounts(count: int, taken: set[int]) -> int:
    """The first block of `count` load accounts that has not checked in today and no earlier
    run used, so every write run makes real check-ins (a 409 is cheap and would flatter the
    figures). Marks the block taken."""
    for first in range(1, COACH_ACCOUNTS - count + 1, count):
        block = set(range(first, first + count))
        if not block & taken:
            taken |= block
            return first
    raise SystemExit(
        "every block of load accounts has checked in today (UTC): use --tokens smaller, "
        "or rerun tomorrow"
    )


def run_k6(run: Run, stamp: str) -> None:
    out = RESULTS / f"{stamp}-{run.name}.json"
    args = [str(K6), "run", "--quiet", "--summary-export", str(out), "-e", f"BASE_URL={run.base}"]
    for key, value in {**run.env, "DURATION": f"{run.seconds}s"}.items():
        args += ["-e", f"{key}={value}"]
    args.append(str(ROOT / "loadtests" / run.script))
    before = metrics_text(run.base)
    log(f"{run.name}: {run.script} on {run.base} ({run.label}) for {run.seconds}s")
    try:
        proc = subprocess.run(  # noqa: S603 - our own k6 binary and scripts
            args, cwd=ROOT, timeout=run.seconds + 240, capture_output=True, text=True
        )
        run.exit_code = proc.returncode
        if proc.returncode not in (0, 99):
            log(f"{run.name}: k6 exited {proc.returncode}\n{proc.stderr[-3000:]}")
    except subprocess.TimeoutExpired:
        run.exit_code = 124
        log(f"{run.name}: k6 timed out")
    after = metrics_text(run.base)
    if out.exists():
        run.summary = json.loads(out.read_text())
    if before and after:
        reqs = run.metric("http_reqs").get("count", 0) or 1
        queries = metric_sum(after, "momentum_db_queries_total") - metric_sum(
            before, "momentum_db_queries_total"
        )
        run.server["sql_per_request"] = queries / reqs
        ttft_b = histogram(before, "momentum_llm_ttft_seconds")
        ttft_a = histogram(after, "momentum_llm_ttft_seconds")
        for q in (0.5, 0.95):
            bound = quantile(ttft_b, ttft_a, q)
            if bound is not None:
                run.server[f"ttft_p{int(q * 100)}_le_s"] = bound


def flush_app_cache(redis_port: int = 6379) -> int:
    """Delete only the app's cache keys (momentum:v1:*), never the rest of Redis."""
    keys = subprocess.run(  # noqa: S603
        [
            REDIS_CLI,
            "-h",
            "127.0.0.1",
            "-p",
            str(redis_port),
            "--scan",
            "--pattern",
            "momentum:v1:*",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    for i in range(0, len(keys), 500):
        subprocess.run(  # noqa: S603
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(redis_port), "unlink", *keys[i : i + 500]],
            capture_output=True,
            timeout=60,
            check=True,
        )
    return len(keys)


# ---- the stack -----------------------------------------------------------------------------
def stack(command: str, **knobs: str) -> None:
    env = {**os.environ, **LOAD_ENV, **knobs}
    subprocess.run(["bash", str(STACK), command], env=env, cwd=ROOT, check=True, timeout=600)  # noqa: S603, S607


def stack_apps(restart: bool, pairs: bool) -> dict[str, str]:
    command = "restart" if restart else "up"
    stack(command)
    apps = {"main": "http://127.0.0.1:8000"}
    if pairs:
        stack(command, STACK_CACHE="off")
        stack(command, STACK_DIRECT="on")
        apps |= {"cache_off": "http://127.0.0.1:8001", "direct": "http://127.0.0.1:8002"}
    for base in apps.values():
        wait_ready(base)
    return apps


def full_runs(args: argparse.Namespace, apps: dict[str, str]) -> list[Run]:
    read = {"RATE": str(args.rate)}
    mixed = {
        "READ_RATE": str(args.rate - args.write_rate * 2),
        "WRITE_RATE": str(args.write_rate),
        "TOKENS": str(args.tokens),
        "RUN_SEED": str(secrets.randbelow(1_000_000)),
    }
    s = args.duration
    runs = [
        Run(
            "reads", "reads.js", apps["main"], "cache on, pgbouncer", read, s, rate=f"{args.rate}/s"
        )
    ]
    if "cache_off" in apps:
        runs.append(
            Run(
                "reads-cache-off",
                "reads.js",
                apps["cache_off"],
                "cache off, pgbouncer",
                read,
                s,
                False,
                f"{args.rate}/s",
            )
        )
    wr = f"{mixed['READ_RATE']}/s reads + {args.write_rate}/s writes x2"
    runs.append(Run("mixed", "mixed.js", apps["main"], "cache on, pgbouncer", mixed, s, rate=wr))
    if "direct" in apps:
        runs.append(
            Run(
                "mixed-direct",
                "mixed.js",
                apps["direct"],
                "cache on, direct PostgreSQL",
                mixed,
                s,
                False,
                wr,
            )
        )
    runs.append(
        Run(
            "cold_start",
            "cold_start.js",
            apps["main"],
            "cache on, pgbouncer, keys flushed",
            read,
            args.cold_duration,
            rate=f"{args.rate}/s",
        )
    )
    runs.append(
        Run(
            "coach",
            "coach.js",
            apps["main"],
            "local SmolLM2",
            {"EVERY": args.coach_every, "TOKENS": "5"},
            args.coach_duration,
            rate=f"1 per {args.coach_every}",
        )
    )
    return runs


# ---- smoke: an app of our own on SQLite ----------------------------------------------------
def smoke_app(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        **LOAD_ENV,
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'smoke.db'}",
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    env.pop("REDIS_URL", None)
    (tmp / "metrics").mkdir()
    for cmd in (["db", "upgrade"], ["seed", "--scale", "demo"]):
        subprocess.run(  # noqa: S603
            [str(PY), "-m", "app", *cmd],
            env=env,
            cwd=ROOT,
            check=True,
            timeout=300,
            capture_output=True,
        )
    app = subprocess.Popen(  # noqa: S603
        [
            str(PY),
            "-m",
            "app",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "app.log", "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    # The demo scale has no load-NNNN accounts: sign up the few the scripts log in as.
    for n in (*range(1, 6), *range(901, 903)):
        email = f"load-{n:04d}@momentum.local"
        status = post_json(
            f"{base}/api/v1/auth/signup",
            {"email": email, "password": "momentum-load", "display_name": f"Load {n:04d}"},
        )
        if status not in (200, 201, 409):
            raise SystemExit(f"smoke: sign-up of {email} answered {status}")
    return app, base


def smoke_runs(base: str) -> list[Run]:
    ids = {"CHALLENGES": "60", "USERS": "200", "HOT_CHALLENGES": "50", "HOT_USERS": "150"}
    low = {**ids, "RATE": "10", "VUS": "5"}
    return [  # cold_start first: the fresh app's cache is cold without any flush
        Run(
            "cold_start",
            "cold_start.js",
            base,
            "smoke: SQLite, in-process cache",
            low,
            10,
            rate="10/s",
        ),
        Run("reads", "reads.js", base, "smoke", low, 10, rate="10/s"),
        Run(
            "mixed",
            "mixed.js",
            base,
            "smoke",
            {
                **ids,
                "READ_RATE": "8",
                "WRITE_RATE": "2",
                "TOKENS": "5",
                "VUS": "4",
                "WRITE_VUS": "2",
            },
            10,
            rate="8/s + 2/s",
        ),
        Run(
            "coach",
            "coach.js",
            base,
            "smoke",
            {"EVERY": "5s", "TOKENS": "2", "FIRST_ACCOUNT": "901"},
            10,
            rate="1 per 5s",
        ),
    ]


# ---- report --------------------------------------------------------------------------------
def ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def failed(run: Run, tag: str = "") -> tuple[int, int]:
    m = run.metric(f"http_req_failed{{{tag}}}" if tag else "http_req_failed")
    return int(m.get("passes", 0)), int(m.get("passes", 0)) + int(m.get("fails", 0))


def crossed(run: Run) -> list[str]:
    return [
        f"{name} {expr}"
        for name, m in run.summary.get("metrics", {}).items()
        for expr, broke in m.get("thresholds", {}).items()
        if broke
    ]


def strict_notes(run: Run) -> list[str]:
    notes = []
    read = run.metric("http_req_duration{kind:read}")
    if read and run.name in ("reads", "mixed"):
        p95 = read.get("p(95)", 0)
        notes.append(
            f"reads p95 {p95:.1f} ms {'<' if p95 < STRICT_READ_P95 else '>='} {STRICT_READ_P95:.0f} ms"
        )
        bad, total = failed(run, "kind:read")
        notes.append(f"read failures {bad}/{total}")
        dropped = run.metric("dropped_iterations").get("count", 0)
        notes.append(f"dropped iterations {int(dropped)}")
    write = run.metric("http_req_duration{kind:write}")
    if write:
        p95 = write.get("p(95)", 0)
        notes.append(
            f"writes p95 {p95:.1f} ms {'<' if p95 < STRICT_WRITE_P95 else '>='} {STRICT_WRITE_P95:.0f} ms"
        )
    return notes


def strict_ok(run: Run) -> bool:
    if not run.gating:
        return True
    if not run.metric("http_reqs").get("count"):
        return False  # no data is no proof
    read = run.metric("http_req_duration{kind:read}")
    if read and run.name in ("reads", "mixed"):
        if read.get("p(95)", 0) >= STRICT_READ_P95 or failed(run, "kind:read")[0]:
            return False
        if run.metric("dropped_iterations").get("count", 0):
            return False
    write = run.metric("http_req_duration{kind:write}")
    return not (write and write.get("p(95)", 0) >= STRICT_WRITE_P95)


def report(runs: list[Run], args: argparse.Namespace, stamp: str, machine: dict[str, Any]) -> str:
    lines = [
        f"# Load test {stamp}{' (smoke)' if args.smoke else ''}",
        "",
        f"k6 1.1 open model (constant-arrival-rate) on {machine['cpus']} CPUs, k6 on the same machine. "
        f"Machine CPU busy before the runs: {machine['busy_before']:.0%} (other work included); "
        f"load average after: {machine['load_after']}.",
        "",
        "| run | app | rate | requests | req/s | dropped | group | p50 ms | p95 ms | p99 ms | failed | SQL/req |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        reqs = run.metric("http_reqs")
        dropped = int(run.metric("dropped_iterations").get("count", 0))
        first = True
        for group in GROUPS:
            m = run.metric(f"http_req_duration{{group:{group}}}")
            if not m or not m.get("count"):
                continue
            bad, total = failed(run, f"group:{group}")
            head = (
                f"| {run.name}{'' if run.gating else ' (comparison)'} | {run.label} | {run.rate} | "
                f"{int(reqs.get('count', 0))} | {reqs.get('rate', 0):.0f} | {dropped} "
                if first
                else "| | | | | | "
            )
            sql = (
                f"{run.server['sql_per_request']:.2f}"
                if first and "sql_per_request" in run.server
                else ""
            )
            lines.append(
                f"{head}| {group} | {ms(m.get('med'))} | {ms(m.get('p(95)'))} | {ms(m.get('p(99)'))} | {bad}/{total} | {sql} |"
            )
            first = False
        if first:
            lines.append(
                f"| {run.name} | {run.label} | {run.rate} | 0 | 0 | {dropped} | (no data: k6 exit {run.exit_code}) | | | | | |"
            )
    cold = next((r for r in runs if r.name == "cold_start"), None)
    if cold:
        warming, warm = (
            cold.metric("http_req_duration{phase:warming}"),
            cold.metric("http_req_duration{phase:warm}"),
        )
        if warming and warm:
            lines += [
                "",
                f"Cold start: first seconds after the flush p95 {ms(warming.get('p(95)'))} ms "
                f"(p99 {ms(warming.get('p(99)'))}), afterwards p95 {ms(warm.get('p(95)'))} ms.",
            ]
    for run in runs:
        conflicts = run.metric("write_conflicts") if run.summary else {}
        if conflicts:
            total = conflicts.get("passes", 0) + conflicts.get("fails", 0)
            fresh = (
                ""
                if args.smoke
                else "; each write run logs in load accounts with no check-in "
                "today, so the rest are real joins and check-ins"
            )
            lines += [
                "",
                f"{run.name}: {conflicts.get('passes', 0)} of {total} writes answered 409 "
                f"(already joined / checked in){fresh}.",
            ]
    coach = next((r for r in runs if r.name == "coach"), None)
    if coach and coach.summary:
        stream, opened, post = (
            coach.metric(n) for n in ("coach_stream_ms", "coach_stream_open_ms", "coach_post_ms")
        )
        answered = coach.metric("coach_answered")
        ttft = coach.server
        lines += [
            "",
            "Coach (excluded from the API target): "
            f"POST p95 {ms(post.get('p(95)'))} ms, stream open p95 {ms(opened.get('p(95)'))} ms, "
            f"whole answer p50 {ms(stream.get('med'))} / p95 {ms(stream.get('p(95)'))} ms, "
            f"answered {answered.get('passes', 0)}/{answered.get('passes', 0) + answered.get('fails', 0)}; "
            "time to first token (server histogram, bucket upper bound): "
            f"p50 <= {ms(1000 * ttft['ttft_p50_le_s']) if 'ttft_p50_le_s' in ttft else '-'} ms, "
            f"p95 <= {ms(1000 * ttft['ttft_p95_le_s']) if 'ttft_p95_le_s' in ttft else '-'} ms.",
        ]
    lines += ["", "## Thresholds (p95 < 300 ms, < 0.1% failed, per endpoint group)", ""]
    for run in runs:
        broke = crossed(run)
        status = (
            "pass"
            if not broke and run.exit_code == 0
            else ("FAIL" if run.gating else "broken (comparison, not gating)")
        )
        lines.append(
            f"- {run.name}: {status}{': ' + '; '.join(broke) if broke else ''}"
            f"{f' (k6 exit {run.exit_code})' if run.exit_code not in (0, 99) else ''}"
        )
    lines += [
        "",
        "## Stricter targets (reads p95 < 50 ms at the rate, no failures, no dropped iterations; writes p95 < 150 ms)",
        "",
    ]
    for run in runs:
        notes = strict_notes(run) if run.metric("http_reqs").get("count") else []
        if run.gating and not notes and run.name in ("reads", "mixed"):
            notes = [f"no data (k6 exit {run.exit_code})"]
        if notes:
            lines.append(
                f"- {run.name}{'' if run.gating else ' (comparison)'}: {'met' if strict_ok(run) and run.gating else ('missed' if run.gating else '-')}: {', '.join(notes)}"
            )
    lines += [
        "",
        f"Rerun: `{'make loadtest-smoke' if args.smoke else 'make loadtest'}` "
        f"(`python scripts/loadtest.py {' '.join(sys.argv[1:])}`). Raw k6 summaries: loadtests/results/{stamp}-*.json.",
    ]
    return "\n".join(lines) + "\n"


# ---- main ----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="10 s per script on an app of its own (SQLite)"
    )
    parser.add_argument("--rate", type=int, default=400, help="read requests per second")
    parser.add_argument(
        "--write-rate", type=int, default=20, help="join+check-in iterations per second"
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds per reads/mixed run")
    parser.add_argument("--cold-duration", type=int, default=30)
    parser.add_argument("--coach-every", default="5s")
    parser.add_argument("--coach-duration", type=int, default=60)
    parser.add_argument(
        "--no-pairs", action="store_true", help="skip the cache-off and direct comparisons"
    )
    parser.add_argument(
        "--no-restart", action="store_true", help="reuse running apps (else restart them)"
    )
    parser.add_argument("--only", default="", help="comma-separated run names")
    parser.add_argument("--tokens", type=int, default=50, help="load accounts the mixed runs use")
    parser.add_argument("--strict", action="store_true", help="also fail on the stricter targets")
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "loadtests" / "results",
        help="where summaries and reports go",
    )
    args = parser.parse_args()

    global RESULTS
    RESULTS = args.results
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    machine: dict[str, Any] = {"cpus": os.cpu_count()}
    app: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="momentum-loadtest-") as tmp:
        try:
            if args.smoke:
                app, base = smoke_app(Path(tmp))
                runs = smoke_runs(base)
            else:
                apps = stack_apps(restart=not args.no_restart, pairs=not args.no_pairs)
                runs = full_runs(args, apps)
            if args.only:
                wanted = set(args.only.split(","))
                runs = [r for r in runs if r.name in wanted]
            machine["busy_before"] = settle() if not args.smoke else cpu_busy()
            taken = set() if args.smoke else accounts_checked_in_today()
            files = itertools.count()

            def tokens_for(run: Run, first: int | None = None) -> str:
                """A token file for `run`: the coach's accounts, or a fresh block for writes."""
                count = int(run.env.get("TOKENS", "5"))
                first = first or fresh_accounts(count, taken)
                log(f"{run.name}: logging in load-{first:04d} and the next {count - 1}")
                path = Path(tmp) / f"tokens-{next(files)}.json"
                return fetch_tokens(run.base, count, first, path)

            for run in runs:
                if run.name == "cold_start" and not args.smoke:
                    log(f"cold_start: deleted {flush_app_cache()} momentum:v1:* keys")
                elif (
                    run.name in ("reads", "reads-cache-off", "mixed", "mixed-direct")
                    and not args.smoke
                ):
                    warm = Run(f"warmup-{run.name}", run.script, run.base, run.label, run.env, 5)
                    if run.script == "mixed.js":
                        warm.env = {**run.env, "TOKENS_FILE": tokens_for(warm)}
                    run_k6(warm, stamp)  # fill caches and pools; not reported
                if run.script == "mixed.js" and not args.smoke:
                    run.env = {**run.env, "TOKENS_FILE": tokens_for(run)}
                elif run.script == "coach.js" and not args.smoke:
                    run.env = {**run.env, "TOKENS_FILE": tokens_for(run, COACH_ACCOUNTS)}
                run_k6(run, stamp)
        finally:
            if app is not None:
                app.terminate()
                app.wait(timeout=30)
    machine["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = report(runs, args, stamp, machine)
    name = "smoke" if args.smoke else "latest"
    (RESULTS / f"{stamp}{'-smoke' if args.smoke else ''}.md").write_text(text)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    if args.smoke:  # CI judges the scripts, not this machine's latency: no failures, no errors
        bad = [r.name for r in runs if failed(r)[0] or r.exit_code not in (0, 99) or not r.summary]
        return 1 if bad else 0
    broke = [r.name for r in runs if r.gating and (crossed(r) or r.exit_code != 0)]
    if args.strict:
        broke += [r.name for r in runs if not strict_ok(r)]
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
