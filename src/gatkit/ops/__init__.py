"""Pure tensor operations on edge lists (the bottom layer of gatkit).

``ops`` → ``nn`` → ``models`` → ``data`` → ``train`` → ``cli``: every arrow points down.
"""

from gatkit.ops.csr import EdgeCSR, build_csr, cached_by_edge_index, csr_of, edge_list
from gatkit.ops.fused import (
    BACKENDS,
    AttentionDropout,
    attention_dropout,
    gat_attention,
    gatv2_attention,
    get_backend,
    kernels_for,
    set_backend,
    use_backend,
)
from gatkit.ops.head_scores import head_scores
from gatkit.ops.masks import (
    draw_keep_mask,
    get_mask_generator,
    set_mask_generator,
    use_mask_generator,
)
from gatkit.ops.segment import gather, segment_max, segment_softmax, segment_sum
from gatkit.ops.self_loops import (
    FILL_REDUCTIONS,
    add_self_loops,
    remove_self_loops,
    self_loop_attr,
)

__all__ = [
    "BACKENDS",
    "FILL_REDUCTIONS",
    "AttentionDropout",
    "EdgeCSR",
    "add_self_loops",
    "attention_dropout",
    "build_csr",
    "cached_by_edge_index",
    "csr_of",
    "draw_keep_mask",
    "edge_list",
    "gat_attention",
    "gatv2_attention",
    "get_backend",
    "get_mask_generator",
    "kernels_for",
    "set_backend",
    "set_mask_generator",
    "use_backend",
    "use_mask_generator",
    "gather",
    "head_scores",
    "remove_self_loops",
    "segment_max",
    "segment_softmax",
    "segment_sum",
    "self_loop_attr",
]
