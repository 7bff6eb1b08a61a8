"""Retry timing: exponential backoff with jitter, never sooner than the provider asked."""

from __future__ import annotations

import random


def retry_delay(attempt: int, base: float, cap: float, provider_after: float = 0.0) -> float:
    """Seconds to wait before attempt ``attempt + 1``.

    "Equal jitter": half of the exponential step is fixed, half random, so retries of many
    deliveries that failed together spread out but never come back sooner than half the step.
    """
    step = min(cap, base * 2 ** max(0, attempt - 1))
    delay = step / 2 + random.uniform(0, step / 2)
    return max(delay, provider_after)
