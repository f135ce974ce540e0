"""Pure tensor operations on edge lists (the bottom layer of gatkit).

``ops`` → ``nn`` → ``models`` → ``data`` → ``train`` → ``cli``: every arrow points down.
"""

from gatkit.ops.segment import gather, segment_max, segment_softmax, segment_sum
from gatkit.ops.self_loops import (
    FILL_REDUCTIONS,
    add_self_loops,
    remove_self_loops,
    self_loop_attr,
)

__all__ = [
    "FILL_REDUCTIONS",
    "add_self_loops",
    "gather",
    "remove_self_loops",
    "segment_max",
    "segment_softmax",
    "segment_sum",
    "self_loop_attr",
]
