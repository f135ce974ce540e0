"""Neural-network layers: compose :mod:`gatkit.ops` and hold parameters."""

from gatkit.nn.attention_recorder import record_attention
from gatkit.nn.dropout import FeatureDropout, HeadwiseProjection
from gatkit.nn.gat_conv import GATConv
from gatkit.nn.gatv2_conv import GATv2Conv
from gatkit.nn.pooling import (
    GlobalAttentionPool,
    global_max_pool,
    global_mean_pool,
    global_sum_pool,
)
from gatkit.nn.recomputed_dropout import LeanDropout, lean_dropout

__all__ = [
    "FeatureDropout",
    "GATConv",
    "GATv2Conv",
    "GlobalAttentionPool",
    "HeadwiseProjection",
    "LeanDropout",
    "global_max_pool",
    "global_mean_pool",
    "global_sum_pool",
    "lean_dropout",
    "record_attention",
]
