"""TokenBucket with the time passed in: no clock, no sleeping."""

from __future__ import annotations

import pytest

from bridge.core.ratelimit import TokenBucket


def drain(bucket: TokenBucket, now: float, attempts: int) -> int:
    return sum(bucket.allow(now) for _ in range(attempts))


def test_starts_full_and_allows_exactly_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=5)
    assert drain(bucket, 100.0, 10) == 5
    assert bucket.allow(100.0) is False


def test_refills_at_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=4)
    assert drain(bucket, 0.0, 4) == 4
    assert not bucket.allow(0.0)
    assert bucket.allow(0.5)  # 0.5 s × 2/s = 1 token
    assert not bucket.allow(0.5)
    assert drain(bucket, 1.5, 10) == 2


def test_fractional_refill_accumulates() -> None:
    bucket = TokenBucket(rate=0.5, burst=1)
    assert bucket.allow(10.0)
    assert not bucket.allow(11.0)  # only 0.5 token
    assert bucket.allow(12.0)  # 0.5 + 0.5


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)
    assert drain(bucket, 0.0, 3) == 3
    assert drain(bucket, 1000.0, 10) == 3
    assert bucket.tokens == pytest.approx(0.0)


def test_denied_request_costs_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.allow(0.0)
    for step in range(1, 8):  # binary-exact times: 0.125 ... 0.875
        assert not bucket.allow(step / 8)
    assert bucket.allow(1.0)  # the seven refusals did not push the refill back


def test_cost() -> None:
    bucket = TokenBucket(rate=1.0, burst=10)
    assert bucket.allow(0.0, cost=7)
    assert not bucket.allow(0.0, cost=4)
    assert bucket.tokens == pytest.approx(3.0)
    assert bucket.allow(0.0, cost=3)
    assert not bucket.allow(0.0, cost=0.5)


def test_cost_over_burst_is_never_allowed() -> None:
    bucket = TokenBucket(rate=100.0, burst=2)
    assert not bucket.allow(0.0, cost=3)
    assert not bucket.allow(1e6, cost=3)
    assert bucket.allow(1e6, cost=2)


def test_first_call_does_not_refill_from_time_zero() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert drain(bucket, 1e9, 5) == 2


def test_independent_buckets() -> None:
    a = TokenBucket(rate=1.0, burst=1)
    b = TokenBucket(rate=1.0, burst=1)
    assert a.allow(0.0)
    assert b.allow(0.0)
    assert not a.allow(0.0)


def test_frames_per_ten_seconds_shape() -> None:
    # The web layer's per-socket limit: 40 frames per 10 s, bursting to 40.
    bucket = TokenBucket(rate=40 / 10, burst=40)
    assert drain(bucket, 0.0, 100) == 40
    assert drain(bucket, 5.0, 100) == 20
    assert drain(bucket, 15.0, 100) == 40
