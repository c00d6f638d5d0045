"""Prometheus metrics of the cache service (module level: registered once per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CACHE_OPERATIONS = Counter(
    "momentum_cache_operations_total",
    "Cache reads by key family and result (hit, miss, error, stale).",
    ["cache", "result"],
)
CACHE_LOADS = Counter(
    "momentum_cache_loads_total",
    "Loader executions (the database work the cache did not save).",
    ["cache"],
)
CACHE_LOAD_DURATION = Histogram(
    "momentum_cache_load_duration_seconds",
    "Duration of loader executions.",
    ["cache"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CACHE_CIRCUIT_OPEN = Gauge(
    "momentum_cache_circuit_open",
    "1 while the Redis circuit breaker is open (cache calls skip Redis), else 0.",
)
