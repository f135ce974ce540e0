"""Models built from :mod:`gatkit.nn` layers; configured by plain dataclasses."""

from gatkit.models.gat import GAT, GATConfig

__all__ = ["GAT", "GATConfig"]
