"""Command line: `python -m app serve | db upgrade | seed [--scale demo|load]`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence

from app.settings import ROOT, get_settings

Command = Callable[[argparse.Namespace], int]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    port = args.port or settings.port
    if args.workers > 1 and not settings.redis_url:
        print(
            "serve: more than one worker needs REDIS_URL. Without it each worker keeps its own "
            "cache, sessions and rate limits: a member signed in on one worker is signed out "
            "on the next, and pages show stale numbers. Set REDIS_URL or use --workers 1.",
            file=sys.stderr,
        )
        return 2
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Must be set before any worker imports prometheus_client (workers are spawned);
        # emptied on start so counters from a previous run do not leak in.
        metrics_dir = ROOT / "var" / f"metrics-{port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "app.asgi:create_app",
        factory=True,
        host=args.host or settings.host,
        port=port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )
    return 0


def _db(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade

    if args.action == "upgrade":
        upgrade(args.revision)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from app.db.seed import seed

    asyncio.run(seed(args.scale))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the app with uvicorn")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=get_settings().workers)
    serve.set_defaults(func=_serve)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("revision", nargs="?", default="head")
    db.set_defaults(func=_db)

    seed = sub.add_parser("seed", help="load demo or load-test data (idempotent)")
    seed.add_argument("--scale", choices=["demo", "load"], default="demo")
    seed.set_defaults(func=_seed)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands owned by other modules register themselves here (e.g. the coach)."""
    try:
        module = importlib.import_module("app.coach_cli")
    except ModuleNotFoundError:
        return
    module.register(sub)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    sys.exit(func(args))
