"""Pool gauges and a statement counter, kept by SQLAlchemy events (multiprocess-safe)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

CHECKED_OUT = Gauge(
    "momentum_db_pool_checked_out", "Connections in use", multiprocess_mode="livesum"
)
POOL_SIZE = Gauge("momentum_db_pool_size", "Configured pool size", multiprocess_mode="livesum")
OVERFLOW = Gauge(
    "momentum_db_pool_overflow", "Configured extra connections", multiprocess_mode="livesum"
)

QUERIES = Counter("momentum_db_queries_total", "SQL statements sent to the database")


def instrument_pool(engine: AsyncEngine, size: int, overflow: int) -> None:
    POOL_SIZE.set(size)
    OVERFLOW.set(overflow)

    def checkout(*_: Any) -> None:
        CHECKED_OUT.inc()

    def checkin(*_: Any) -> None:
        CHECKED_OUT.dec()

    def query(*_: Any) -> None:
        QUERIES.inc()

    event.listen(engine.sync_engine, "before_cursor_execute", query)
    event.listen(engine.sync_engine, "checkout", checkout)
    event.listen(engine.sync_engine, "checkin", checkin)
