"""schemathesis (v4) against the app's own /schema/openapi.json, in-process over ASGI, with
a bearer token so private endpoints are exercised: no operation may answer 5xx."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient

from app.asgi import create_app
from app.settings import Settings

pytestmark = pytest.mark.slow
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzz_app(sqlite_settings: Settings):  # type: ignore[no-untyped-def]
    return create_app(
        replace(
            sqlite_settings,
            coach_warmup=False,
            coach_max_tokens=4,
            coach_rate_limit_per_minute=100_000,
            login_rate_limit=100_000,
        )
    )


@pytest.fixture(scope="module")
def bearer(fuzz_app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with TestClient(app=fuzz_app) as client:
        res = client.post(
            "/api/v1/auth/token",
            json={"email": "demo@momentum.local", "password": "momentum-demo"},
        )
        return {"Authorization": f"Bearer {res.json()['token']}"}


def test_no_operation_answers_5xx(fuzz_app, bearer: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app=fuzz_app) as client:
        raw = client.get("/schema/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    failures: list[str] = []
    operations = 0
    seen: dict[int, int] = {}
    with TestClient(app=fuzz_app, base_url="http://127.0.0.1") as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path.endswith("/stream"):
                continue  # SSE: the streaming tests cover it with real readers
            operations += 1

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def run(case) -> None:  # type: ignore[no-untyped-def]
                kwargs = case.as_transport_kwargs(base_url="http://127.0.0.1")
                headers = {**(kwargs.get("headers") or {}), **bearer}
                res = client.request(
                    kwargs["method"],
                    kwargs["url"].replace("http://127.0.0.1", ""),
                    headers=headers,
                    params=kwargs.get("params"),
                    content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes) else None,
                    json=kwargs.get("json"),
                )
                seen[res.status_code // 100] = seen.get(res.status_code // 100, 0) + 1
                if res.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} {case.query} {case.body!r}"
                        f" -> {res.status_code} {res.text[:200]}"
                    )

            run()
    print(f"schemathesis: {operations} operations, responses by class {seen}")
    assert operations >= 10 and seen.get(2, 0) > 0 and seen.get(4, 0) > 0, seen
    assert not failures, "\n".join(failures[:20])
