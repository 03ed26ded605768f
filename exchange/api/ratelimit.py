"""Token-bucket rate limits, per client (FHIR API) and per source address (token endpoint),
on the app's clock (so tests decide when time passes).

Buckets live in each worker process: with N workers the effective burst is up to N times
the configured one. That bounds abuse without a shared store on the request path; a
deployment that needs one global limit puts it in its load balancer.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final

from exchange.clock import Clock
from exchange.settings import RateLimit

MAX_BUCKETS: Final = 50_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key; `check` spends one token or says how long to wait."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> int | None:
        """None if the request may proceed, else the seconds to wait (for Retry-After)."""
        if not self._limit.enabled:
            return None
        now = self._clock.now().timestamp()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(float(self._limit.burst), now)
            bucket.tokens = min(
                self._limit.burst, bucket.tokens + (now - bucket.updated) * self._limit.rate
            )
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return max(1, math.ceil((1 - bucket.tokens) / self._limit.rate))

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self._limit.rate >= self._limit.burst
        ]
        for key in full:
            del self._buckets[key]
