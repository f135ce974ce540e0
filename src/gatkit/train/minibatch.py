r"""Mini-batch training of a node classifier on neighbour-sampled blocks.

One epoch visits every training node once, in shuffled batches of ``batch_size`` seeds. For
a batch of seeds :math:`S` with sampled blocks :math:`B_1, \dots, B_L`
(:class:`gatkit.data.sampling.NeighborSampler`):

.. math::
    \mathbf{H}^{(0)} = \mathbf{X}[V_0], \qquad
    \mathbf{H}^{(\ell)} = \mathrm{step}_\ell(\mathbf{H}^{(\ell-1)}, B_\ell), \qquad
    \mathcal{L} = -\frac{1}{|S|}\sum_{i \in S} \log \mathrm{softmax}(\mathbf{z}_i)_{y_i},

followed by one Adam step (L2 weight decay :math:`\lambda\theta`). :math:`V_0` are the
first block's source nodes. Every ``eval_every`` epochs the model is evaluated exactly
(no sampling) with :func:`gatkit.train.layerwise.layerwise_inference`; the weights with
the best validation accuracy are kept and give the test accuracy at the end.

Data parallelism: when ``torch.distributed`` is initialised with more than one process,
the model runs under :class:`~torch.nn.parallel.DistributedDataParallel` (gradients
averaged across processes), each process samples its own shard of the training nodes
(:class:`gatkit.data.sampling.NeighborLoader` with ``num_replicas``/``rank``; all shards
have the same number of batches), the epoch's loss and accuracy are summed across
processes, evaluation runs on rank 0 and its numbers are broadcast, and only rank 0 writes
checkpoints (atomically) and the metrics file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gatkit.data.graph import Graph
from gatkit.data.sampling import Block, InNeighbourCSR, NeighborLoader, NeighborSampler
from gatkit.errors import DatasetError
from gatkit.models.layer_steps import forward_layer, model_num_layers
from gatkit.train.checkpoint import save_checkpoint
from gatkit.train.layerwise import layerwise_inference

__all__ = ["BlockModel", "MiniBatchNodeTrainer", "MiniBatchResult"]


class BlockModel(nn.Module):
    """``model`` applied to a list of blocks: the module that DDP wraps in mini-batch training.

    ``forward(x, blocks)`` takes ``x`` ``[N_0, F]`` (features of ``blocks[0].src_nodes``)
    and returns the logits ``[N_L, C]`` of ``blocks[-1]``'s destination nodes.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.num_layers = model_num_layers(model)
        self.model = model

    def forward(self, x: Tensor, blocks: Sequence[Block]) -> Tensor:
        if len(blocks) != self.num_layers:
            raise ValueError(
                f"blocks must hold one block per layer ({self.num_layers}), got {len(blocks)}"
            )
        for index, block in enumerate(blocks):
            x = forward_layer(self.model, index, x, block.num_dst, block.edge_index)
        return x


@dataclass
class MiniBatchResult:
    """Outcome of one mini-batch run (accuracies are fractions in [0, 1])."""

    seed: int
    epochs: int
    best_epoch: int
    train_accuracy: float  # of the kept weights, exact (layer-wise) evaluation
    val_accuracy: float
    test_accuracy: float
    seconds_per_epoch: float  # training only (sampling + steps), mean over epochs
    eval_seconds: float  # mean seconds of one layer-wise evaluation
    world_size: int
    final_train_loss: float  # mean sampled-batch loss of the last epoch, all processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_graph(graph: Graph) -> None:
    missing = [
        name
        for name in ("y", "train_mask", "val_mask", "test_mask")
        if getattr(graph, name) is None
    ]
    if missing:
        raise DatasetError(
            f"graph {graph.name!r} cannot be used for node classification: it has no {missing}"
        )


class MiniBatchNodeTrainer:
    """Neighbour-sampled mini-batch trainer for a node classifier (see module docstring).

    Args:
        model: a :class:`gatkit.models.GAT` or a model with ``forward_layer`` (e.g.
            :class:`gatkit.models.residual_gat.ResidualGAT`), on ``device``.
        graph: the graph with ``y`` and train/val/test masks (kept on the CPU).
        fanouts: in-edges sampled per node, one per layer, input layer first.
        batch_size: seed nodes per batch (per process).
        epochs: epochs to train.
        lr, weight_decay: Adam settings (default: the model config's ``lr`` and
            ``weight_decay``).
        seed: seed of the shuffling and sampling generators.
        eval_every: evaluate (layer-wise, exact) every this many epochs and after the last.
        eval_batch_size: destination nodes per batch in layer-wise evaluation.
        checkpoint_path: where rank 0 writes the checkpoint after each evaluation.
        metrics_path: JSON-lines file, one object per epoch (rank 0).
        metadata: extra entries stored in the checkpoint.
        device: where batches are computed (default: the model's device).
    """

    def __init__(
        self,
        model: nn.Module,
        graph: Graph,
        *,
        fanouts: Sequence[int] = (15, 10),
        batch_size: int = 1024,
        epochs: int = 10,
        lr: float | None = None,
        weight_decay: float | None = None,
        seed: int = 0,
        eval_every: int = 1,
        eval_batch_size: int = 4096,
        checkpoint_path: str | os.PathLike[str] | None = None,
        metrics_path: str | os.PathLike[str] | None = None,
        metadata: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        _check_graph(graph)
        num_layers = model_num_layers(model)
        if len(fanouts) != num_layers:
            raise ValueError(
                f"fanouts must give one value per model layer ({num_layers}), got {list(fanouts)}"
            )
        for name, value in (("epochs", epochs), ("eval_every", eval_every)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        config = getattr(model, "config", None)
        lr = lr if lr is not None else getattr(config, "lr", 0.01)
        weight_decay = (
            weight_decay if weight_decay is not None else getattr(config, "weight_decay", 0.0)
        )
        self.rank, self.world_size = _world()
        first = next(model.parameters())
        self.device = torch.device(device) if device is not None else first.device
        self.model = model
        self.graph = graph
        self.seed = seed
        self.epochs = epochs
        self.eval_every = eval_every
        self.eval_batch_size = eval_batch_size
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.metrics_path = Path(metrics_path) if metrics_path is not None else None
        self.metadata = dict(metadata or {})
        self.fanouts = list(fanouts)
        self.batch_size = batch_size

        self.csr = InNeighbourCSR(graph.edge_index, graph.num_nodes)
        sampler = NeighborSampler(graph.edge_index, graph.num_nodes, self.fanouts, csr=self.csr)
        train_nodes = graph.train_mask.nonzero().flatten()  # [S]
        self.loader = NeighborLoader(
            sampler,
            train_nodes,
            batch_size,
            shuffle=True,
            seed=seed,
            num_replicas=self.world_size,
            rank=self.rank,
        )
        block_model = BlockModel(model)
        if self.world_size > 1:
            device_ids = [self.device] if self.device.type == "cuda" else None
            block_model = nn.parallel.DistributedDataParallel(block_model, device_ids=device_ids)
        self.block_model = block_model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.lr, self.weight_decay = lr, weight_decay
        self.epoch = 0
        self.best_epoch = 0
        self.best_val = -1.0
        self.best_state: dict[str, Tensor] | None = None
        self.train_seconds: list[float] = []
        self.eval_seconds: list[float] = []
        self.last_loss = float("nan")
        self.best_scores: dict[str, float] = {}

    # ------------------------------------------------------------------ training
    def train_epoch(self) -> dict[str, float]:
        """One pass over this process's shard; loss and accuracy summed over all processes."""
        graph, device = self.graph, self.device
        self.block_model.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seeds
        start = time.perf_counter()
        for batch in self.loader:
            batch = batch.to(device)
            x = graph.x.index_select(0, batch.input_nodes.cpu()).to(device)  # [N_0, F]
            y = graph.y[batch.seeds.cpu()].to(device)  # [B]
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.block_model(x, batch.blocks)  # [B, C]
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                totals += torch.tensor(
                    [float(loss) * y.numel(), float((logits.argmax(-1) == y).sum()), y.numel()],
                    dtype=torch.float64,
                )
        seconds = time.perf_counter() - start
        if self.world_size > 1:  # sums over processes (on the device: nccl needs it there)
            totals = totals.to(self.device)
            dist.all_reduce(totals)
            totals = totals.cpu()
        self.epoch += 1
        self.train_seconds.append(seconds)
        loss_sum, correct, count = totals.tolist()
        self.last_loss = loss_sum / max(count, 1.0)
        return {"train_loss": self.last_loss, "train_acc": correct / max(count, 1.0),
                "seconds": seconds}  # fmt: skip

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Exact loss and accuracy on train/val/test (rank 0 computes, then broadcasts)."""
        values = torch.zeros(6, dtype=torch.float64)
        if self.rank == 0:
            start = time.perf_counter()
            logits = layerwise_inference(
                self.model,
                self.graph,
                batch_size=self.eval_batch_size,
                csr=self.csr,
                device=self.device,
            )  # [N, C]
            self.eval_seconds.append(time.perf_counter() - start)
            g = self.graph
            for slot, mask in enumerate((g.train_mask, g.val_mask, g.test_mask)):
                z, labels = logits[mask], g.y[mask]
                values[2 * slot] = float(nn.functional.cross_entropy(z, labels))
                values[2 * slot + 1] = float((z.argmax(-1) == labels).float().mean())
        if self.world_size > 1:
            values = values.to(self.device)
            dist.broadcast(values, src=0)
            values = values.cpu()
        names = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
        return dict(zip(names, values.tolist(), strict=True))

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The checkpoint payload (model, optimiser, kept weights, sampler settings)."""
        config = getattr(self.model, "config", None)
        return {
            "model_kind": getattr(self.model, "kind", type(self.model).__name__),
            "config": config.to_dict() if hasattr(config, "to_dict") else {},
            "model_args": {
                "in_channels": self.model.in_channels,
                "num_classes": self.model.num_classes,
            },
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "finished": self.epoch >= self.epochs,
            "seed": self.seed,
            "sampler": {"fanouts": self.fanouts, "batch_size": self.batch_size},
            "world_size": self.world_size,
            "metadata": self.metadata,
        }

    def _write_metrics(self, handle, record: dict[str, Any]) -> None:
        if handle is not None:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    # ------------------------------------------------------------------ the loop
    def fit(self) -> MiniBatchResult:
        """Train for ``epochs`` epochs; return the kept model's exact accuracies."""
        handle = None
        if self.rank == 0 and self.metrics_path is not None:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.metrics_path, "w", encoding="utf-8")  # noqa: SIM115
        scores: dict[str, float] = {}
        try:
            while self.epoch < self.epochs:
                record: dict[str, Any] = {"epoch": self.epoch + 1, **self.train_epoch()}
                if self.epoch % self.eval_every == 0 or self.epoch == self.epochs:
                    scores = self.evaluate()
                    record.update({f"eval_{k}": v for k, v in scores.items()})
                    if scores["val_acc"] > self.best_val:
                        self.best_val, self.best_epoch = scores["val_acc"], self.epoch
                        self.best_state = {
                            k: v.detach().clone() for k, v in self.model.state_dict().items()
                        }
                        self.best_scores = scores
                    if self.rank == 0 and self.checkpoint_path is not None:
                        save_checkpoint(self.checkpoint_path, self.state())
                self._write_metrics(handle, record)
        finally:
            if handle is not None:
                handle.close()
        best = self.best_scores
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return MiniBatchResult(
            seed=self.seed,
            epochs=self.epoch,
            best_epoch=self.best_epoch,
            train_accuracy=best["train_acc"],
            val_accuracy=best["val_acc"],
            test_accuracy=best["test_acc"],
            seconds_per_epoch=sum(self.train_seconds) / max(len(self.train_seconds), 1),
            eval_seconds=sum(self.eval_seconds) / max(len(self.eval_seconds), 1),
            world_size=self.world_size,
            final_train_loss=self.last_loss,
        )
