"""The retry policy shared by every registry request."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

# Statuses worth another try, after go-containerregistry's list: request timeout, rate limit,
# and the gateway/unavailable family that load balancers emit while a backend restarts.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped.

    Defaults: 5 attempts waiting about 0.5, 1, 2, 4 s (each jittered) — long enough to ride over a
    registry restart, short enough that a dead registry fails within ~10 s.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0
    # Retry-After values above this are not honoured blindly: a registry asking for an hour
    # is better reported to the user than waited for silently.
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after:
            try:
                wanted = float(retry_after)
            except ValueError:
                wanted = math.nan  # an HTTP-date: fall back to our own backoff rather than parse calendars
            if math.isfinite(wanted):
                return min(max(wanted, 0.0), self.max_retry_after)
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def sleep(self, attempt: int, retry_after: str | None = None) -> None:
        time.sleep(self.delay(attempt, retry_after))
