"""Token buckets on the app's clock: a burst, then waits that refill with time."""

from __future__ import annotations

from exchange.api.ratelimit import RateLimiter
from exchange.settings import RateLimit
from tests.factories import FrozenClock


def test_a_burst_then_a_wait_named_in_whole_seconds() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(RateLimit(0.5, 3), clock)
    assert [limiter.check("client") for _ in range(3)] == [None, None, None]
    assert limiter.check("client") == 2  # one token takes two seconds at 0.5/s
    clock.advance(seconds=1)
    assert limiter.check("client") == 1
    clock.advance(seconds=1)
    assert limiter.check("client") is None


def test_each_key_has_its_own_bucket_and_off_means_off() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(RateLimit(1, 1), clock)
    assert limiter.check("a") is None and limiter.check("a") == 1
    assert limiter.check("b") is None
    unlimited = RateLimiter(RateLimit(0, 0), clock)
    assert all(unlimited.check("a") is None for _ in range(100))
