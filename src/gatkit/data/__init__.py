"""Graph containers, dataset loaders and generators."""

from gatkit.data.download import data_root

__all__ = ["data_root"]
