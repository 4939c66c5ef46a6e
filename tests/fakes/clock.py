"""A clock the test sets: the hub ring reads the time only through the clock it is given."""

from __future__ import annotations

# 2024-03-12 10:00:00 UTC: a Tuesday morning, inside any office hours a test configures.
DEFAULT_START = 1_710_237_600.0


class FakeClock:
    """Seconds since the epoch, as `time.time` gives them, moved only by the test."""

    def __init__(self, start: float = DEFAULT_START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        """Move on by `seconds`; returns the new time."""
        self.now += seconds
        return self.now
