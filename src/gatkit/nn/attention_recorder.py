"""Read the attention coefficients of every attention layer inside any model.

>>> with record_attention(model) as recorded:
...     model(graph.x, graph.edge_index)
>>> edge_index, alpha = recorded["conv1"]      # alpha: [E', heads]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn

from gatkit.nn._attention_base import GraphAttentionBase


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, tuple[Tensor, Tensor]]]:
    """Within the block, each GAT/GATv2 layer in ``model`` keeps its last attention.

    Yields a dict filled on exit: module name (as in ``model.named_modules()``) →
    ``(edge_index_used [2, E'], alpha [E', heads])``, in the order of the modules. The
    attention is the one after dropout, so call ``model.eval()`` first for the coefficients.
    """
    layers = {
        name or type(module).__name__: module
        for name, module in model.named_modules()
        if isinstance(module, GraphAttentionBase)
    }
    recorded: dict[str, tuple[Tensor, Tensor]] = {}
    for layer in layers.values():
        layer.record_attention = True
        layer.last_attention = None
    try:
        yield recorded
    finally:
        for name, layer in layers.items():
            if layer.last_attention is not None:
                recorded[name] = layer.last_attention
            layer.record_attention = False
            layer.last_attention = None
