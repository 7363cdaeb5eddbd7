"""Bounded retries for provider calls: capped exponential backoff with full jitter, waits the
service asks for (Retry-After, a model's estimated loading time), and never past the Deadline.

Transport-level retries (urllib3, botocore) stay small; this loop owns the time budget, because
only it knows how long the Lambda invocation has left.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reimagine.errors import ProviderError
from reimagine.model_call import Deadline

T = TypeVar("T")
logger = logging.getLogger(__name__)


class TransientFailure(Exception):
    """An attempt failed in a way another attempt may fix; `wait` is what the service asked for."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5  # first backoff ceiling; doubles per attempt
    max_delay: float = 8.0  # ceiling of our own backoff
    max_server_wait: float = 30.0  # longest Retry-After / estimated_time we honour
    reserve_seconds: float = 1.0  # left to the caller after the last attempt, to record the failure
    min_attempt_seconds: float = 2.0  # an attempt with less time than this cannot succeed

    def backoff(self, attempt: int, rand: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(attempt-1))]."""
        return rand() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


def run_with_retries(
    attempt: Callable[[float], T],
    *,
    deadline: Deadline,
    what: str,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Call `attempt(time_budget_seconds)` until it returns, raises a non-transient error, runs out
    of attempts (PROVIDER_UNAVAILABLE) or out of time (PROVIDER_TIMEOUT)."""
    policy = policy or RetryPolicy()
    number = 0
    while True:
        number += 1
        budget = deadline.remaining() - policy.reserve_seconds
        if budget < policy.min_attempt_seconds:
            raise _timeout(what, number - 1)
        try:
            return attempt(budget)
        except TransientFailure as failure:
            if number >= policy.max_attempts:
                raise ProviderError(
                    f"{what} failed after {number} attempts: {failure.reason}",
                    code="PROVIDER_UNAVAILABLE",
                    retryable=True,
                ) from None
            if failure.wait is not None:
                # The service said how long; add a little jitter so callers do not return in step.
                delay = min(failure.wait, policy.max_server_wait) + policy.backoff(1, rand)
            else:
                delay = policy.backoff(number, rand)
            if deadline.remaining() - policy.reserve_seconds - delay < policy.min_attempt_seconds:
                raise _timeout(what, number, failure.reason) from None
            logger.info(
                "provider call will be retried",
                extra={"call": what, "attempt": number, "reason": failure.reason, "delay": round(delay, 3)},
            )
            sleep(delay)


def _timeout(what: str, attempts: int, reason: str | None = None) -> ProviderError:
    detail = f" (last failure: {reason})" if reason else ""
    return ProviderError(
        f"{what}: the time budget ran out after {attempts} attempts{detail}",
        code="PROVIDER_TIMEOUT",
        retryable=True,
    )
