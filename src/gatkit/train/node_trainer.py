r"""Full-batch training of a node classifier with the GAT protocol.

One epoch is one optimisation step on the whole graph followed by one evaluation:

1. training mode (dropout on): logits :math:`\mathbf{Z} = f_\theta(\mathbf{X}, E)`, loss
   :math:`\mathcal{L} = -\frac{1}{|V_{tr}|}\sum_{i \in V_{tr}}
   \log \mathrm{softmax}(\mathbf{z}_i)_{y_i}`, one Adam step with L2 weight decay
   :math:`\lambda\theta` on every parameter;
2. evaluation mode (dropout off): validation loss and accuracy, fed to
   the early-stopping rule of ``config.stopping``
   (:class:`gatkit.train.early_stopping.GATEarlyStopping` by default), which decides whether
   to keep this epoch's weights and whether to stop.

At the end the kept weights are loaded back into the model and evaluated on the test mask.

Checkpoints (every ``checkpoint_every`` epochs and at the end) hold the model, optimiser,
early-stopping and random-generator states, so :meth:`NodeTrainer.fit` with ``resume=True``
continues an interrupted run to exactly the weights an uninterrupted run reaches (bit-for-bit
on the same machine and thread count, in deterministic mode). Metrics go to a JSON-lines file,
one object per epoch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gatkit.data.graph import Graph
from gatkit.errors import CheckpointError, DatasetError
from gatkit.models import GAT, GATConfig
from gatkit.train.checkpoint import load_checkpoint, save_checkpoint
from gatkit.train.early_stopping import make_stopper
from gatkit.train.seeding import capture_rng_state, restore_rng_state

# Config fields that may differ between an interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset({"max_epochs"})


@dataclass
class NodeTrainResult:
    """Outcome of one training run (accuracies are fractions in [0, 1])."""

    seed: int | None
    epochs: int  # epochs trained in total
    best_epoch: int  # epoch whose weights were kept
    stopped_early: bool
    train_accuracy: float  # of the kept weights, evaluation mode
    val_accuracy: float
    val_loss: float
    test_accuracy: float
    seconds_per_epoch: float  # wall clock of training step + validation, mean over epochs
    cpu_seconds_per_epoch: float  # CPU time of the same (all threads of this process)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def masked_loss_and_accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> tuple[float, float]:
    """Cross-entropy and accuracy of ``logits`` on the nodes in ``mask`` (as floats)."""
    logits, labels = logits[mask], y[mask]
    loss = nn.functional.cross_entropy(logits, labels)
    accuracy = (logits.argmax(dim=-1) == labels).float().mean()
    return float(loss.detach()), float(accuracy)


def check_node_graph(graph: Graph) -> None:
    """Refuse a graph that lacks labels or a split, naming what is missing."""
    required = ("y", "train_mask", "val_mask", "test_mask")
    missing = [name for name in required if getattr(graph, name) is None]
    if missing:
        raise DatasetError(
            f"graph {graph.name!r} cannot be used for node classification: it has no {missing}"
        )
    for name in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(graph, name)
        labels = graph.y[mask]
        if labels.numel() == 0:
            raise DatasetError(f"graph {graph.name!r} has an empty {name}")
        if bool((labels < 0).any()):
            raise DatasetError(f"graph {graph.name!r}: {name} contains unlabelled nodes (y = -1)")


def model_from_checkpoint(record: dict[str, Any]) -> GAT:
    """Rebuild the :class:`GAT` stored in a checkpoint record, with its kept weights.

    The kept (early-stopping) weights are loaded when present, else the last ones.
    """
    if record["model_kind"] != GAT.kind:
        raise CheckpointError(
            f"checkpoint holds a {record['model_kind']!r} model, not {GAT.kind!r}"
        )
    try:
        config = GATConfig.from_dict(dict(record["config"]))
        model = GAT(config=config, **record["model_args"])
        state = record.get("best_state") or record["model_state"]
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError, KeyError) as error:
        raise CheckpointError(f"checkpoint does not fit a GAT model: {error}") from error
    return model


class NodeTrainer:
    """Full-batch trainer for :class:`gatkit.models.GAT` on one graph (GAT protocol).

    Args:
        model: the classifier; its ``config`` gives lr, weight decay, patience, epoch cap.
        graph: a :class:`Graph` with ``y`` and train/val/test masks, on the model's device.
        seed: recorded in the checkpoint and result (seeding is the caller's job).
        max_epochs: override of ``model.config.max_epochs``.
        checkpoint_path: where to write checkpoints (``None``: no checkpoints, no resume).
        checkpoint_every: write a checkpoint every this many epochs (and always at the end).
        metrics_path: JSON-lines file with one object per epoch (``None``: not written).
        progress: show a tqdm bar (epoch, loss, validation accuracy) on stderr.
        metadata: extra entries stored in the checkpoint (e.g. the dataset name).
        on_epoch_end: called with the epoch number after each epoch (and its checkpoint).
    """

    def __init__(
        self,
        model: GAT,
        graph: Graph,
        *,
        seed: int | None = None,
        max_epochs: int | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 50,
        metrics_path: str | os.PathLike[str] | None = None,
        progress: bool = False,
        metadata: dict[str, Any] | None = None,
        on_epoch_end: Callable[[int], None] | None = None,
    ) -> None:
        check_node_graph(graph)
        if graph.num_features != model.in_channels:
            raise DatasetError(
                f"graph {graph.name!r} has {graph.num_features} features per node but the model "
                f"was built with in_channels={model.in_channels}"
            )
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}")
        if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < 1):
            raise ValueError(f"max_epochs must be None or a positive int, got {max_epochs!r}")
        self.model = model
        self.graph = graph
        self.config = model.config
        self.seed = seed
        self.max_epochs = max_epochs if max_epochs is not None else self.config.max_epochs
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.checkpoint_every = checkpoint_every
        self.metrics_path = Path(metrics_path) if metrics_path is not None else None
        self.progress = progress
        self.metadata = dict(metadata or {})
        self.on_epoch_end = on_epoch_end
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        self.stopper = make_stopper(self.config.stopping, self.config.patience, self.max_epochs)
        self.epoch = 0
        self.best_state: dict[str, Tensor] | None = None
        self.finished = False
        self.stopped_early = False
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self.timed_epochs = 0

    # ------------------------------------------------------------------ one epoch
    def train_step(self) -> tuple[float, float]:
        """One Adam step on the training nodes; returns (loss, accuracy) with dropout on."""
        g = self.graph
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(g.x, g.edge_index)  # [N, C]
        loss = nn.functional.cross_entropy(logits[g.train_mask], g.y[g.train_mask])
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            accuracy = (logits[g.train_mask].argmax(-1) == g.y[g.train_mask]).float().mean()
        return float(loss.detach()), float(accuracy)

    @torch.no_grad()
    def evaluate(self) -> dict[str, tuple[float, float]]:
        """(loss, accuracy) on the train, val and test masks, evaluation mode."""
        g = self.graph
        self.model.eval()
        logits = self.model(g.x, g.edge_index)
        return {
            split: masked_loss_and_accuracy(logits, g.y, getattr(g, f"{split}_mask"))
            for split in ("train", "val", "test")
        }

    @torch.no_grad()
    def _validate(self) -> tuple[float, float]:
        g = self.graph
        self.model.eval()
        logits = self.model(g.x, g.edge_index)
        return masked_loss_and_accuracy(logits, g.y, g.val_mask)

    # ------------------------------------------------------------------ state
    def _model_args(self) -> dict[str, int]:
        return {"in_channels": self.model.in_channels, "num_classes": self.model.num_classes}

    def state(self) -> dict[str, Any]:
        """The checkpoint payload for the current epoch."""
        return {
            "model_kind": self.model.kind,
            "config": self.config.to_dict(),
            "model_args": self._model_args(),
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "early_stopping": self.stopper.state_dict(),
            "rng": capture_rng_state(),
            "best_state": self.best_state,
            "finished": self.finished,
            "stopped_early": self.stopped_early,
            "train_seconds": self.train_seconds,
            "train_cpu_seconds": self.train_cpu_seconds,
            "timed_epochs": self.timed_epochs,
            "seed": self.seed,
            "metadata": self.metadata,
        }

    def save(self) -> None:
        """Write the current state to ``checkpoint_path`` (atomically)."""
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, self.state())

    def restore(self, record: dict[str, Any]) -> None:
        """Continue from a checkpoint record after checking it belongs to this run."""
        path = self.checkpoint_path
        if record["model_kind"] != self.model.kind:
            raise CheckpointError(
                f"{path} holds a {record['model_kind']!r} model, expected {self.model.kind!r}"
            )
        saved, current = dict(record["config"]), self.config.to_dict()
        changed = sorted(
            key
            for key in set(saved) | set(current)
            if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
        )
        if changed:
            detail = ", ".join(
                f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in changed
            )
            raise CheckpointError(f"{path} was written by another model configuration ({detail})")
        for name, now in (
            ("model_args", self._model_args()),
            ("seed", self.seed),
            ("metadata", self.metadata),
        ):
            if record.get(name) != now:
                raise CheckpointError(
                    f"{path} was written for another run: {name} saved {record.get(name)!r}, "
                    f"now {now!r}"
                )
        self.model.load_state_dict(record["model_state"])
        self.optimizer.load_state_dict(record["optimizer_state"])
        self.stopper.load_state_dict(record["early_stopping"])
        self.epoch = int(record["epoch"])
        self.best_state = record["best_state"]
        self.finished = bool(record["finished"])
        self.stopped_early = bool(record["stopped_early"])
        self.train_seconds = float(record["train_seconds"])
        self.train_cpu_seconds = float(record.get("train_cpu_seconds", 0.0))
        self.timed_epochs = int(record["timed_epochs"])
        restore_rng_state(record["rng"])

    # ------------------------------------------------------------------ metrics file
    def _open_metrics(self, resume: bool):
        if self.metrics_path is None:
            return None
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[str] = []
        if resume and self.metrics_path.exists():
            # Drop epochs after the checkpoint: they are trained again.
            for line in self.metrics_path.read_text().splitlines():
                try:
                    if json.loads(line)["epoch"] <= self.epoch:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    break
        handle = open(self.metrics_path, "w", encoding="utf-8")  # noqa: SIM115
        handle.writelines(line + "\n" for line in kept)
        return handle

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> NodeTrainResult:
        """Train until early stopping or ``max_epochs``; return the kept model's accuracies.

        With ``resume=True`` and an existing checkpoint, training continues from it (a
        finished run is only evaluated); without a checkpoint it starts from scratch.
        """
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.restore(load_checkpoint(self.checkpoint_path))
        metrics = None if self.finished else self._open_metrics(resume)
        bar = tqdm(
            total=self.max_epochs,
            initial=self.epoch,
            desc=f"seed {self.seed}" if self.seed is not None else "train",
            unit="epoch",
            leave=False,
            dynamic_ncols=True,
            disable=self.finished or not self.progress or not sys.stderr.isatty(),
        )
        try:
            while not self.finished and self.epoch < self.max_epochs:
                self._run_epoch(metrics, bar)
            if not self.finished:  # epoch cap reached
                self.finished = True
                self.save()
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
        return self._result()

    def _run_epoch(self, metrics, bar) -> None:
        start, cpu_start = time.perf_counter(), time.process_time()
        train_loss, train_acc = self.train_step()
        val_loss, val_acc = self._validate()
        elapsed = time.perf_counter() - start
        self.epoch += 1
        self.train_seconds += elapsed
        self.train_cpu_seconds += time.process_time() - cpu_start
        self.timed_epochs += 1
        decision = self.stopper.step(self.epoch, val_loss, val_acc)
        if decision.keep:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if decision.stop or self.epoch >= self.max_epochs:
            self.finished = True
            self.stopped_early = decision.stop
        if metrics is not None:
            record = {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "improved": decision.improved,
                "kept": decision.keep,
                "seconds": elapsed,
            }
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.4f}", refresh=False)
        if self.finished or self.epoch % self.checkpoint_every == 0:
            self.save()
        if self.on_epoch_end is not None:
            self.on_epoch_end(self.epoch)

    def _result(self) -> NodeTrainResult:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        scores = self.evaluate()
        best_epoch = self.stopper.best_epoch if self.stopper.best_epoch is not None else self.epoch
        return NodeTrainResult(
            seed=self.seed,
            epochs=self.epoch,
            best_epoch=best_epoch,
            stopped_early=self.stopped_early,
            train_accuracy=scores["train"][1],
            val_accuracy=scores["val"][1],
            val_loss=scores["val"][0],
            test_accuracy=scores["test"][1],
            seconds_per_epoch=self.train_seconds / max(self.timed_epochs, 1),
            cpu_seconds_per_epoch=self.train_cpu_seconds / max(self.timed_epochs, 1),
        )
