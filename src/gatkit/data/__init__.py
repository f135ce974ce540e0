"""Graph containers, dataset loaders and generators."""

from gatkit.data.batch import GraphBatch, GraphLoader, collate
from gatkit.data.dictionary_lookup import DictionaryLookup, make_dictionary_lookup
from gatkit.data.download import data_root
from gatkit.data.graph import Graph
from gatkit.data.ogb import load_ogb_node
from gatkit.data.planetoid import load_planetoid
from gatkit.data.sampling import Block, NeighborLoader, NeighborSampler
from gatkit.data.tu import TUDataset, TUGraph, load_tu

__all__ = [
    "Block",
    "DictionaryLookup",
    "Graph",
    "GraphBatch",
    "GraphLoader",
    "NeighborLoader",
    "NeighborSampler",
    "TUDataset",
    "TUGraph",
    "collate",
    "data_root",
    "load_ogb_node",
    "load_planetoid",
    "load_tu",
    "make_dictionary_lookup",
]
