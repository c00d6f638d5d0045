"""create_app(): the only place a Litestar application is built."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import structlog
from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemyPlugin,
)
from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.prometheus import PrometheusController
from litestar.template.config import TemplateConfig

from app.db.engine import make_engine, make_sessionmaker
from app.dependencies import DEPENDENCIES
from app.lib.asgi_headers import SESSION_COOKIE
from app.lib.auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SKIP_SESSION,
    BearerAwareCSRFMiddleware,
    ViewerMiddleware,
)
from app.lib.db_metrics import instrument_pool
from app.lib.logging import configure_logging
from app.lib.login_limit import LoginRateLimitMiddleware
from app.lib.observability import RequestObserver
from app.lib.security_headers import SecurityHeaders
from app.lib.sessions import ChangeOnlySessionConfig
from app.lib.static_assets import SKIP_COMPRESSION_OPT, asset_url, static_route
from app.routes.api import api_router
from app.routes.errors import EXCEPTION_HANDLERS
from app.routes.fragments import fragments_router
from app.routes.pages import page_router
from app.routes.system import healthz, readyz
from app.services.cache import build_cache
from app.services.coach.memory import drain_all
from app.services.coach.routing import warm_up as warm_up_router
from app.services.llm import LLMGateway
from app.settings import Settings, get_settings

HERE = Path(__file__).resolve().parent
SESSION_MAX_AGE = 14 * 24 * 3600


STREAM_PATHS = [r"/stream$"]  # SSE must reach the client chunk by chunk, never buffered


async def _warm_up(gateway: LLMGateway) -> None:
    for name, step in (
        ("router", partial(asyncio.to_thread, warm_up_router)),
        ("llm", gateway.warm_up),
    ):
        try:
            await step()
        except Exception:
            structlog.get_logger("app").warning("coach_warmup_failed", step=name, exc_info=True)


def _template_globals(engine: JinjaTemplateEngine) -> None:
    engine.engine.globals.update(asset_url=asset_url)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    engine = make_engine(settings)
    instrument_pool(engine, settings.db_pool_size, settings.db_max_overflow)
    cache = build_cache(settings)
    gateway = LLMGateway(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await cache.start()
        # Import litellm and load the local model off the request path (~5 s, once).
        warmup = asyncio.create_task(_warm_up(gateway)) if settings.coach_warmup else None
        try:
            yield
        finally:
            if warmup is not None:
                warmup.cancel()
            await drain_all(timeout=5.0)  # let pending coach summaries land (re-derivable)
            await cache.close()
            await engine.dispose()

    csrf = CSRFConfig(
        secret=settings.secret_key,
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_secure=not settings.is_development,
        cookie_samesite="lax",
    )
    sessions = ChangeOnlySessionConfig(
        key=SESSION_COOKIE,
        store="sessions",
        max_age=SESSION_MAX_AGE,
        httponly=True,
        secure=not settings.is_development,
        samesite="lax",
        exclude_opt_key=SKIP_SESSION,
    )
    login_limit = RateLimitConfig(
        rate_limit=("minute", settings.login_rate_limit),
        store="rate_limit",
        middleware_class=LoginRateLimitMiddleware,
    )
    db = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_dependency_key="db_session",
        session_config=AsyncSessionConfig(expire_on_commit=False),
    )
    app = Litestar(
        route_handlers=[
            page_router,
            fragments_router,
            api_router,
            healthz,
            readyz,
            MetricsController,
            static_route(),
        ],
        dependencies=DEPENDENCIES,
        plugins=[SQLAlchemyPlugin(config=db), HTMXPlugin()],
        middleware=[
            sessions.middleware,
            ViewerMiddleware,
            DefineMiddleware(BearerAwareCSRFMiddleware, config=csrf),
            login_limit.middleware,
        ],
        stores=cache.stores(),
        state=State(
            {
                "settings": settings,
                "cache": cache,
                "sessions": make_sessionmaker(engine),
                "gateway": gateway,
                "db_config": db,
            }
        ),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=TemplateConfig(
            directory=HERE / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=_template_globals,
        ),
        compression_config=CompressionConfig(
            backend="brotli",
            brotli_gzip_fallback=True,
            exclude_opt_key=SKIP_COMPRESSION_OPT,
            exclude=STREAM_PATHS,
        ),
        openapi_config=OpenAPIConfig(
            title="Momentum API",
            version="1.0.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    # App-level middleware runs after routing; wrapping the handler also times 404s.
    app.asgi_handler = RequestObserver(
        SecurityHeaders(app.asgi_handler, hsts=not settings.is_development)
    )
    return app


class MetricsController(PrometheusController):
    """GET /metrics (aggregates every worker when PROMETHEUS_MULTIPROC_DIR is set)."""

    include_in_schema = False
