"""One cached Settings object, read from the environment once (no os.environ elsewhere)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-only-insecure-secret-key-change-me"  # noqa: S105 - development default only
LOCAL_MODEL = "local/smollm2"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Everything configurable about Momentum; see the README's configuration table."""

    app_env: str = "development"
    secret_key: str = DEV_SECRET
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'var' / 'momentum.db'}"
    database_direct_url: str = ""
    database_pooler: bool = False
    db_pool_size: int = 10
    db_max_overflow: int = 5
    db_pool_timeout: float = 5.0
    redis_url: str | None = None
    cache_timeout: float = 0.05
    cache_enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "INFO"
    login_rate_limit: int = 10
    max_body_bytes: int = 64 * 1024
    coach_model: str = LOCAL_MODEL
    small_talk_model: str = LOCAL_MODEL
    summary_model: str = LOCAL_MODEL
    coach_fallback_model: str = LOCAL_MODEL
    coach_max_tokens: int = 256
    coach_message_max_chars: int = 4000
    coach_rate_limit_per_minute: int = 10
    coach_daily_token_budget: int = 50_000
    coach_window_turns: int = 6
    coach_prompt_token_budget: int = 1500
    coach_summary_max_chars: int = 400  # ~100 tokens, full by turn ~8: prompts stay flat after
    coach_timeout: float = 15.0
    coach_warmup: bool = True

    @property
    def is_development(self) -> bool:
        return self.app_env in {"development", "test"}

    @property
    def migration_url(self) -> str:
        """Migrations bypass the pooler (DDL and advisory locks need a real session)."""
        return self.database_direct_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        app_env = env.get("APP_ENV", "development")
        secret = env.get("SECRET_KEY", "")
        if not secret:
            if app_env not in {"development", "test"}:
                raise RuntimeError("SECRET_KEY must be set when APP_ENV is not development/test")
            secret = DEV_SECRET
        base = cls()
        return cls(
            app_env=app_env,
            secret_key=secret,
            database_url=env.get("DATABASE_URL") or base.database_url,
            database_direct_url=env.get("DATABASE_DIRECT_URL", ""),
            database_pooler=_bool(env.get("DATABASE_POOLER")),
            db_pool_size=_int("DB_POOL_SIZE", base.db_pool_size),
            db_max_overflow=_int("DB_MAX_OVERFLOW", base.db_max_overflow),
            db_pool_timeout=_float("DB_POOL_TIMEOUT", base.db_pool_timeout),
            redis_url=env.get("REDIS_URL") or None,
            cache_timeout=_float("CACHE_TIMEOUT", base.cache_timeout),
            cache_enabled=_bool(env.get("CACHE_ENABLED"), default=True),
            host=env.get("HOST", base.host),
            port=_int("PORT", base.port),
            workers=_int("WORKERS", base.workers),
            log_level=env.get("LOG_LEVEL", base.log_level).upper(),
            login_rate_limit=_int("LOGIN_RATE_LIMIT", base.login_rate_limit),
            max_body_bytes=_int("MAX_BODY_BYTES", base.max_body_bytes),
            coach_model=env.get("COACH_MODEL") or base.coach_model,
            small_talk_model=env.get("SMALL_TALK_MODEL") or base.small_talk_model,
            summary_model=env.get("SUMMARY_MODEL") or base.summary_model,
            coach_fallback_model=env.get("COACH_FALLBACK_MODEL") or base.coach_fallback_model,
            coach_max_tokens=_int("COACH_MAX_TOKENS", base.coach_max_tokens),
            coach_message_max_chars=_int("COACH_MESSAGE_MAX_CHARS", base.coach_message_max_chars),
            coach_rate_limit_per_minute=_int(
                "COACH_RATE_LIMIT_PER_MINUTE", base.coach_rate_limit_per_minute
            ),
            coach_daily_token_budget=_int(
                "COACH_DAILY_TOKEN_BUDGET", base.coach_daily_token_budget
            ),
            coach_window_turns=_int("COACH_WINDOW_TURNS", base.coach_window_turns),
            coach_prompt_token_budget=_int(
                "COACH_PROMPT_TOKEN_BUDGET", base.coach_prompt_token_budget
            ),
            coach_summary_max_chars=_int("COACH_SUMMARY_MAX_CHARS", base.coach_summary_max_chars),
            coach_timeout=_float("COACH_TIMEOUT", base.coach_timeout),
            coach_warmup=_bool(env.get("COACH_WARMUP"), default=app_env != "test"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
