"""Rate limits in Redis: an atomic token bucket per (rule, subject) in one Lua script.

A bucket holds up to ``burst`` tokens and refills at ``per_minute`` a minute; each request
takes one. The script reads the clock from Redis, so every API replica agrees.
"""

from __future__ import annotations

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
