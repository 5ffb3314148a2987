"""Per-key token bucket in Redis (one Lua call per request: atomic across every web process)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from flask import current_app

from ..extensions import redis

# KEYS[1] bucket, KEYS[2] the credentials epoch (app.api.auth); ARGV rate (tokens/s), burst.  Time comes
# from the Redis server so that every web host agrees.  Returns {allowed, tokens_left*1000, epoch}: the
# epoch rides along so that a key served from the in-process credentials cache is re-checked against the
# database the moment any key or organization changed, at no extra round trip.
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, math.floor(tokens * 1000), redis.call('GET', KEYS[2]) or '0'}
"""


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int
    epoch: str = "0"

    def headers(self) -> dict:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


def limits_for(organization) -> tuple[float, int]:
    rate, burst = current_app.config["PLAN_RATE_LIMITS"].get(organization.plan, (10, 20))
    if organization.rate_limit_per_second:
        rate = organization.rate_limit_per_second
    if organization.rate_limit_burst:
        burst = organization.rate_limit_burst
    return float(rate), int(burst)


def hit(api_key_id: str, rate: float, burst: int, epoch_key: str) -> Decision:
    client = redis.client
    script = current_app.extensions.get("postline_ratelimit_script")
    if script is None:
        script = client.register_script(_LUA)
        current_app.extensions["postline_ratelimit_script"] = script
    allowed, tokens_milli, epoch = script(keys=[redis.key("rl", api_key_id), epoch_key], args=[rate, burst],
                                          client=client)
    tokens = tokens_milli / 1000.0
    reset = math.ceil((burst - tokens) / rate) if tokens < burst else 0
    retry_after = 0 if allowed else max(1, math.ceil((1 - tokens) / rate))
    return Decision(bool(allowed), burst, int(tokens), reset, retry_after,
                    epoch.decode() if isinstance(epoch, bytes) else str(epoch))
