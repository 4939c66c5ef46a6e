"""Per-address limits: the client address behind proxies, and counters with a fake clock."""

from __future__ import annotations

import pytest

from bridge.core.limits import (
    ConcurrencyLimiter,
    WindowLimiter,
    client_address,
    limit_key,
    parse_network,
)

PROXIES = tuple(net for net in map(parse_network, ["127.0.0.1", "10.0.0.0/8", "fd00::/8"])
                if net is not None)


# -- the client address ------------------------------------------------------------------


def test_an_untrusted_peer_is_the_address_whatever_it_forwards() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], PROXIES) == "203.0.113.9"
    assert client_address("203.0.113.9", [], PROXIES) == "203.0.113.9"


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"


def test_a_trusted_peer_passes_on_the_forwarded_address() -> None:
    assert client_address("127.0.0.1", ["198.51.100.1"], PROXIES) == "198.51.100.1"


def test_the_right_most_untrusted_entry_wins_over_what_the_client_wrote() -> None:
    # The client claims 1.1.1.1; our proxies (10.x) appended the real peer and themselves.
    header = ["1.1.1.1, 198.51.100.7, 10.1.2.3"]
    assert client_address("10.0.0.5", header, PROXIES) == "198.51.100.7"


def test_a_cidr_network_trusts_every_address_in_it() -> None:
    assert client_address("10.255.0.1", ["192.0.2.4"], PROXIES) == "192.0.2.4"
    assert client_address("11.0.0.1", ["192.0.2.4"], PROXIES) == "11.0.0.1"


def test_several_header_lines_read_as_one_list() -> None:
    assert client_address("127.0.0.1", ["192.0.2.1", "192.0.2.2, 10.0.0.1"],
                          PROXIES) == "192.0.2.2"


def test_all_entries_trusted_gives_the_left_most() -> None:
    assert client_address("127.0.0.1", ["10.0.0.7, 10.0.0.8"], PROXIES) == "10.0.0.7"


@pytest.mark.parametrize("header", [
    "", "   ", "not-an-ip", "198.51.100.1:4711", "[2001:db8::1]", "198.51.100.1,",
    "999.1.1.1", "198.51.100.1;rm -rf", "\x00", "a" * 5000,
])
def test_garbage_the_proxies_wrote_falls_back_to_the_peer(header: str) -> None:
    assert client_address("127.0.0.1", [header], PROXIES) == "127.0.0.1"


def test_garbage_left_of_the_client_is_never_read() -> None:
    # A client cannot make itself count as the proxy by sending a bad header of its own.
    assert client_address("127.0.0.1", ["junk, 198.51.100.3"], PROXIES) == "198.51.100.3"


def test_ipv6_and_mapped_ipv4() -> None:
    assert client_address("fd00::1", ["2001:db8::5"], PROXIES) == "2001:db8::5"
    assert client_address("::ffff:127.0.0.1", ["192.0.2.9"], PROXIES) == "192.0.2.9"
    assert client_address("::ffff:192.0.2.9", [], PROXIES) == "192.0.2.9"


def test_a_peer_that_is_no_address_is_kept_as_it_is() -> None:
    assert client_address("", ["192.0.2.9"], PROXIES) == ""


def test_ipv6_counts_by_its_64() -> None:
    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:bbbb::2")
    assert limit_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("192.0.2.1") == "192.0.2.1"


@pytest.mark.parametrize("text", ["10.0.0.1/8", "10.0.0.0/33", "localhost", "", "1.2.3"])
def test_parse_network_refuses_what_is_no_network(text: str) -> None:
    assert parse_network(text) is None


# -- the window limiter ------------------------------------------------------------------


def test_window_allows_the_limit_then_refuses_only_that_key() -> None:
    limiter = WindowLimiter(limit=3, window_s=600)
    assert [limiter.take("a", 0.0 + i / 10) for i in range(5)] == [True] * 3 + [False] * 2
    assert limiter.take("b", 0.5)


def test_window_slides() -> None:
    limiter = WindowLimiter(limit=2, window_s=10)
    assert limiter.take("a", 0.0) and limiter.take("a", 4.0)
    assert not limiter.take("a", 9.9)
    assert limiter.retry_after("a", 9.9) == pytest.approx(0.1)
    assert limiter.take("a", 10.0)  # the event at 0 left the window
    assert not limiter.take("a", 13.9)
    assert limiter.take("a", 14.0)


def test_refused_attempts_do_not_push_the_window_out() -> None:
    limiter = WindowLimiter(limit=1, window_s=10)
    assert limiter.take("a", 0.0)
    assert not any(limiter.take("a", t) for t in (1.0, 5.0, 9.0))
    assert limiter.take("a", 10.0)


def test_give_back_uncounts_an_event() -> None:
    limiter = WindowLimiter(limit=1, window_s=10)
    assert limiter.take("a", 1.0)
    limiter.give_back("a", 1.0)
    assert limiter.take("a", 1.5)
    limiter.give_back("a", 99.0)  # not an event of "a": nothing happens
    assert not limiter.take("a", 2.0)


def test_zero_switches_the_window_off() -> None:
    limiter = WindowLimiter(limit=0, window_s=10)
    assert all(limiter.take("a", 0.0) for _ in range(1000))
    assert len(limiter) == 0


def test_idle_addresses_are_forgotten() -> None:
    limiter = WindowLimiter(limit=5, window_s=10)
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(limiter) == 1000
    limiter.take("192.0.2.1", 10.0)
    assert len(limiter) == 1


def test_memory_is_capped_even_within_the_window() -> None:
    limiter = WindowLimiter(limit=5, window_s=10, max_keys=100)
    for i in range(1000):
        assert limiter.take(f"k{i}", i / 1000)
    assert len(limiter) == 100


# -- the concurrency limiter -------------------------------------------------------------


def test_concurrency_per_key_and_release() -> None:
    limiter = ConcurrencyLimiter(limit=2)
    assert limiter.acquire("a") and limiter.acquire("a")
    assert not limiter.acquire("a")
    assert limiter.acquire("b")
    limiter.release("a")
    assert limiter.acquire("a")
    for _ in range(2):
        limiter.release("a")
    limiter.release("b")
    assert len(limiter) == 0  # nothing kept for addresses with nothing open
    limiter.release("a")  # one release too many does not go negative
    assert limiter.count("a") == 0


def test_concurrency_zero_is_unlimited() -> None:
    limiter = ConcurrencyLimiter(limit=0)
    assert all(limiter.acquire("a") for _ in range(500))
