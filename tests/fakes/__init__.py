"""Fakes the project owns, for the fast tests of the hub ring and for the benchmarks: a
recording backend, a list-backed visitor sink, a settable clock, and the ring built on them."""
