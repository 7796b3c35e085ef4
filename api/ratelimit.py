"""Rate limits in Redis: an atomic token bucket per (rule, subject) in one Lua script, and
a per-account backoff on failed logins in another.

A bucket holds up to ``burst`` tokens and refills at ``per_minute`` a minute; each request
takes one. The script reads the clock from Redis, so every API replica agrees.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import redis

TOKEN_BUCKET = """
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])  -- tokens per millisecond
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  allowed = 1
  tokens = tokens - 1
else
  wait_ms = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', key, math.ceil(capacity / rate) + 1000)
local full_ms = math.ceil((capacity - tokens) / rate)
return {allowed, math.floor(tokens), wait_ms, full_ms}
"""


@dataclass(frozen=True)
class Rule:
    name: str
    per_minute: float
    burst: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds, 0 when allowed
    reset: int  # seconds until the bucket is full again

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, client: redis.Redis, prefix: str = "fractal") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(TOKEN_BUCKET)

    def hit(self, rule: Rule, subject: str) -> Decision:
        """Take a token; raises redis.RedisError when Redis is unreachable."""
        rate_per_ms = rule.per_minute / 60_000
        allowed, remaining, wait_ms, full_ms = self._script(
            keys=[f"{self.prefix}:rl:{rule.name}:{subject}"], args=[rule.burst, rate_per_ms]
        )
        return Decision(
            allowed=bool(allowed),
            limit=rule.burst,
            remaining=int(remaining),
            retry_after=max(1, math.ceil(int(wait_ms) / 1000)) if not allowed else 0,
            reset=math.ceil(int(full_ms) / 1000),
        )


# Failed logins of one account: the first ``free`` attempts go through at once; after that
# each attempt must wait 1 s, 2 s, 4 s ... (at most ``max_ms``) after the previous one. An
# attempt is counted when it starts, atomically, so parallel guesses cannot slip through
# between a check and a count; a successful login deletes the state.
LOGIN_BACKOFF = """
local key = KEYS[1]
local free = tonumber(ARGV[1])
local max_ms = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local state = redis.call('HMGET', key, 'attempts', 'not_before')
local attempts = tonumber(state[1]) or 0
local not_before = tonumber(state[2]) or 0
if now < not_before then
  return {0, not_before - now}
end
attempts = attempts + 1
local wait_ms = 0
if attempts > free then
  wait_ms = math.min(max_ms, 1000 * 2 ^ (attempts - free - 1))
end
redis.call('HSET', key, 'attempts', attempts, 'not_before', now + wait_ms)
redis.call('PEXPIRE', key, ttl_ms)
return {1, 0}
"""


class LoginBackoff:
    """Per-account backoff on failed logins, in Redis (every API replica agrees)."""

    def __init__(
        self, client: redis.Redis, prefix: str, free_attempts: int, max_wait_seconds: int
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.free_attempts = free_attempts
        self.max_wait_ms = max_wait_seconds * 1000
        self._script = client.register_script(LOGIN_BACKOFF)

    def _key(self, account: str) -> str:
        digest = hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.prefix}:login:{digest}"

    def attempt(self, account: str) -> int:
        """Count an attempt; 0 if it may go ahead, else the seconds to wait (nothing counted).
        Raises redis.RedisError when Redis is unreachable."""
        # The state outlives the longest wait, and an hour of quiet forgets the failures.
        ttl_ms = max(3_600_000, 2 * self.max_wait_ms)
        allowed, wait_ms = self._script(
            keys=[self._key(account)], args=[self.free_attempts, self.max_wait_ms, ttl_ms]
        )
        return 0 if allowed else max(1, math.ceil(int(wait_ms) / 1000))

    def succeeded(self, account: str) -> None:
        self.client.delete(self._key(account))
