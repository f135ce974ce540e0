"""Neural-network layers: compose :mod:`gatkit.ops` and hold parameters."""

from gatkit.nn.attention_recorder import record_attention
from gatkit.nn.gat_conv import GATConv
from gatkit.nn.gatv2_conv import GATv2Conv

__all__ = ["GATConv", "GATv2Conv", "record_attention"]
