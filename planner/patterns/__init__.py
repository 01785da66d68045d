"""The eight distributed operator patterns (canonical names in shared/PATTERNS.md), one module each.

The registry is this explicit tuple; the physical planner asks each for its alternatives and keeps
the cheapest.
"""
from planner.patterns import (broadcast_compute, combine_shuffle_reduce, embarrassingly_parallel,
                              globally_reduce, halo_exchange, partitioned_io, sample_shuffle_compute,
                              shuffle_compute)

PATTERNS = (
    embarrassingly_parallel,
    shuffle_compute,
    sample_shuffle_compute,
    combine_shuffle_reduce,
    broadcast_compute,
    globally_reduce,
    halo_exchange,
    partitioned_io,
)

NAMES = tuple(m.NAME for m in PATTERNS)
