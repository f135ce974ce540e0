"""Models built from :mod:`gatkit.nn` layers; configured by plain dataclasses."""

from gatkit.models.gat import GAT, GATConfig
from gatkit.models.graph_classifier import GraphClassifier, GraphClassifierConfig
from gatkit.models.lookup import LookupModel, LookupModelConfig
from gatkit.models.residual_gat import ResidualGAT, ResidualGATConfig

__all__ = [
    "GAT",
    "GATConfig",
    "GraphClassifier",
    "GraphClassifierConfig",
    "LookupModel",
    "LookupModelConfig",
    "ResidualGAT",
    "ResidualGATConfig",
]
