"""gatkit: graph attention networks (GAT, GATv2) on sparse edge lists, in PyTorch.

Layers: :mod:`gatkit.ops` (edge-list primitives) → :mod:`gatkit.nn` (GATConv, GATv2Conv)
→ :mod:`gatkit.models` → :mod:`gatkit.data` → :mod:`gatkit.train` → :mod:`gatkit.cli`.
"""

from gatkit.errors import CheckpointError, DatasetError, GatkitError, GraphInputError
from gatkit.nn import GATConv, GATv2Conv

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DatasetError",
    "GATConv",
    "GATv2Conv",
    "GatkitError",
    "GraphInputError",
    "__version__",
]
