"""What the commands that read checkpoints share: kind dispatch and node-model rebuilding."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any, TypeVar

from gatkit.errors import CheckpointError

Handler = TypeVar("Handler")


def open_checkpoint(
    path: str | PathLike[str], handlers: Mapping[str, Handler], command: str
) -> tuple[dict[str, Any], Handler]:
    """Load ``path`` and pick the handler of its ``model_kind``; refuse unknown kinds."""
    from gatkit.train.checkpoint import load_checkpoint

    record = load_checkpoint(path)
    kind = record["model_kind"]
    if kind not in handlers:
        raise CheckpointError(
            f"{path} holds a {kind!r} model; '{command}' knows {', '.join(sorted(handlers))}"
        )
    return record, handlers[kind]


def node_model_and_graph(
    record: dict[str, Any], path: str | PathLike[str], data_dir: str | None
) -> tuple[Any, Any, str]:
    """``(model, graph, dataset)`` of a node-classification checkpoint (``gatkit train``)."""
    from gatkit.cli.train import NODE_DATASETS, load_node_dataset
    from gatkit.train.node_trainer import model_from_checkpoint

    dataset = (record.get("metadata") or {}).get("dataset")
    if dataset not in NODE_DATASETS:
        raise CheckpointError(
            f"{path} names dataset {dataset!r}; expected one of {', '.join(NODE_DATASETS)}"
        )
    return model_from_checkpoint(record), load_node_dataset(dataset, data_dir), dataset
