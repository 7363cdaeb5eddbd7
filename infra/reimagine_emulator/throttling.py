"""An HttpApi stage's throttling, as API Gateway applies it: a token bucket per route.

Each route holds up to its burst limit in tokens, refilled at its rate limit a second; a request takes
one, and a request that finds none is refused with 429 before any function runs. The limits come from
the stage's DefaultRouteSettings, a route's own from RouteSettings (template.ApiThrottling).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from reimagine_tools.template import ApiThrottling, Throttle


class TokenBucket:
    def __init__(self, throttle: Throttle, clock: Callable[[], float] = time.monotonic) -> None:
        self.throttle = throttle
        self.clock = clock
        self._tokens = float(throttle.burst)  # a stage starts with its whole burst available
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """One request's token, if the bucket has one."""
        with self._lock:
            now = self.clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            self._tokens = min(float(self.throttle.burst), self._tokens + elapsed * self.throttle.rate)
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class RouteThrottles:
    """The buckets of one stage, one per route key; a route without limits is never refused."""

    def __init__(self, throttling: ApiThrottling | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.throttling = throttling
        self.clock = clock
        self._buckets: dict[str, TokenBucket | None] = {}
        self._lock = threading.Lock()

    def allow(self, route_key: str) -> bool:
        with self._lock:
            if route_key not in self._buckets:
                throttle = self.throttling.for_route(route_key) if self.throttling else None
                self._buckets[route_key] = TokenBucket(throttle, self.clock) if throttle else None
            bucket = self._buckets[route_key]
        return bucket is None or bucket.take()
