"""Everything the routes share, built once per app from the settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, Interceptor

from api import paths
from api.errors import RateLimited, service_unavailable
from api.observability import ApiMetrics
from api.ratelimit import LoginBackoff, RateLimiter, Rule
from api.security import PasswordGate
from api.status_cache import StatusCache
from api.stills import StillRenderer
from api.task_queues import QueueHealth
from fractal.db import make_engine, make_session_factory
from fractal.settings import Settings
from fractal.storage import ObjectStore, make_store

log = logging.getLogger("fractal.api")


def public_base_url(settings: Settings) -> str:
    """Where browsers reach this API (the base of the local store's signed links)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    host = settings.api_host if settings.api_host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{settings.api_port}"


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    redis: redis.Redis
    limiter: RateLimiter
    submissions: Rule
    auth_attempts: Rule
    signups: Rule
    login_backoff: LoginBackoff
    password_gate: PasswordGate
    # The studio's routes: previews and estimates, map tiles, rendered in this process.
    stills: StillRenderer
    previews: Rule
    map_tiles: Rule
    metrics: ApiMetrics = field(default_factory=ApiMetrics.create)
    # The watchdog's latest view of the task queues and the store (api/watchdog.py).
    queue_health: QueueHealth = field(default_factory=QueueHealth)
    # GET /v1/animations/{id} answers, for status_cache_seconds (api/status_cache.py).
    statuses: StatusCache = field(default_factory=lambda: StatusCache(0.0))
    # The tracing interceptor when tracing is on: workflow starts continue the request's trace.
    temporal_interceptors: Sequence[Interceptor] = ()
    _temporal: Client | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        metrics: ApiMetrics | None = None,
        temporal_interceptors: Sequence[Interceptor] = (),
    ) -> AppContext:
        if not settings.database_url:
            raise RuntimeError("FRACTAL_DATABASE_URL is required")
        if not settings.redis_url:
            raise RuntimeError("FRACTAL_REDIS_URL is required")
        engine = make_engine(settings.database_url)
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=2
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            store=make_store(settings, public_base_url(settings) + paths.FILES),
            redis=client,
            limiter=RateLimiter(client, settings.redis_key_prefix),
            submissions=Rule("submit", settings.submissions_per_minute, settings.submission_burst),
            auth_attempts=Rule(
                "auth", settings.auth_attempts_per_minute, settings.auth_attempts_per_minute
            ),
            signups=Rule("signup", settings.signups_per_hour / 60, settings.signups_per_hour),
            login_backoff=LoginBackoff(
                client,
                settings.redis_key_prefix,
                settings.login_failures_before_backoff,
                settings.login_backoff_max_seconds,
            ),
            password_gate=PasswordGate(settings.password_hash_concurrency),
            stills=StillRenderer(
                settings.preview_threads, settings.preview_cache_megabytes * 1024 * 1024
            ),
            previews=Rule("preview", settings.previews_per_minute, settings.preview_burst),
            map_tiles=Rule("tile", settings.map_tiles_per_minute, settings.map_tile_burst),
            metrics=metrics or ApiMetrics.create(),
            statuses=StatusCache(settings.status_cache_seconds),
            temporal_interceptors=temporal_interceptors,
        )

    async def temporal(self) -> Client:
        """The Temporal client, connected on first use (the API starts without Temporal)."""
        if self._temporal is None:
            from fractal.temporal import connect_with

            async with self._temporal_lock:
                if self._temporal is None:
                    self._temporal = await connect_with(
                        self.settings,
                        timeout=self.settings.temporal_connect_timeout_seconds,
                        interceptors=self.temporal_interceptors,
                    )
        return self._temporal

    def spend_rate_limit(self, rule: Rule, subject: str) -> dict[str, str]:
        """Take one token of ``rule`` for ``subject``; the ``RateLimit-*`` headers to answer
        with. 429 when none is left, 503 when Redis is down (nothing is let through)."""
        try:
            decision = self.limiter.hit(rule, subject)
        except redis.RedisError:
            log.warning("redis unreachable: refusing %s", rule.name)
            raise service_unavailable("rate limiting (Redis)") from None
        if not decision.allowed:
            self.metrics.rate_limit_rejections.labels(rule.name).inc()
            raise RateLimited("rate limit exceeded; retry later", decision.headers())
        return decision.headers()

    def close(self) -> None:
        self.stills.close()
        self.redis.close()
        self.engine.dispose()
