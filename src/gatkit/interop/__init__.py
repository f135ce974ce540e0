"""Moving between gatkit and other libraries. PyG is imported only when these are called."""

from gatkit.interop.pyg import from_pyg, to_pyg

__all__ = ["from_pyg", "to_pyg"]
