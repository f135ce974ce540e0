"""Graph containers, dataset loaders and generators."""

from gatkit.data.download import data_root
from gatkit.data.graph import Graph
from gatkit.data.planetoid import load_planetoid

__all__ = ["Graph", "data_root", "load_planetoid"]
