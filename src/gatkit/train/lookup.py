r"""Training and evaluation on DictionaryLookup (Brody, Alon, Yahav, ICLR 2022, §4.1).

The authors' protocol: Adam (lr :math:`10^{-3}`), cross-entropy over the query nodes,
gradient-norm clipping at 1.0, batches of 1024 graphs as one disjoint union, the learning rate
halved when test node accuracy has not improved for 10 evaluations (``ReduceLROnPlateau``,
mode max), training stopped once test accuracy is 1.0.

Their budget (100 passes over the training set between evaluations) costs hours on a 2-core
CPU, so :class:`LookupTrainConfig` counts *steps*: ``steps`` batches of ``batch_size`` graphs,
drawn by reshuffling the training set each pass, with an evaluation every ``eval_every``
steps on a fixed random subset of ``eval_graphs`` training and test graphs. That evaluation
drives the scheduler, and training stops early once both subsets are solved node for node
(the authors stop on test accuracy alone; also requiring the training subset is stricter).
The reported accuracies come from a final evaluation on the whole training and test sets
(or on ``final_eval_graphs`` random graphs of each, when that is set).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from gatkit.data.dictionary_lookup import DictionaryLookup, make_batch
from gatkit.models.lookup import LookupModel, LookupModelConfig

__all__ = [
    "LOOKUP_MODEL_KIND",
    "LookupAccuracy",
    "LookupResult",
    "LookupTrainConfig",
    "evaluate_lookup",
    "lookup_checkpoint_payload",
    "train_lookup",
]

#: ``model_kind`` of lookup checkpoints (see :mod:`gatkit.train.checkpoint`).
LOOKUP_MODEL_KIND = "dictionary-lookup"


@dataclass(frozen=True)
class LookupTrainConfig:
    """Optimisation settings; paper values where the paper gives one.

    Attributes:
        steps: most optimiser steps (our CPU budget; the paper trains far longer).
        batch_size: graphs per step, as one disjoint union (paper: 1024).
        lr: Adam learning rate (paper: 1e-3).
        clip_norm: gradient-norm clipping (paper: 1.0).
        eval_every: steps between evaluations that drive the scheduler and early stop.
        eval_graphs: size of the fixed training and test subsets used by those evaluations.
        plateau_factor: learning-rate factor on a plateau (paper: 0.5).
        plateau_patience: evaluations without improvement before it (paper: 10).
        final_eval_graphs: graphs per split in the final evaluation; ``None`` for all.
        stop_when_solved: stop once both evaluation subsets reach node accuracy 1.0.
        seed: seed of the weights and of the batch order (paper: 11).
    """

    steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    clip_norm: float = 1.0
    eval_every: int = 50
    eval_graphs: int = 1024
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    final_eval_graphs: int | None = None
    stop_when_solved: bool = True
    seed: int = 11

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_graphs", "plateau_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0, got {self.clip_norm!r}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must lie in (0, 1), got {self.plateau_factor!r}")
        if self.final_eval_graphs is not None and self.final_eval_graphs < 1:
            raise ValueError(
                f"final_eval_graphs must be None or a positive int, got {self.final_eval_graphs!r}"
            )


@dataclass(frozen=True)
class LookupAccuracy:
    """Accuracy over queries (``node``) and over whole graphs (``graph``: all k queries right)."""

    node: float
    graph: float
    num_graphs: int


@dataclass
class LookupResult:
    """What :func:`train_lookup` returns: the model, final accuracies, budget actually used."""

    model: LookupModel
    train: LookupAccuracy
    test: LookupAccuracy
    steps: int
    graphs_seen: int
    train_seconds: float
    eval_seconds: float
    solved_at_step: int | None
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready summary (no tensors)."""
        c = self.model.config
        return {
            "k": c.k,
            "model": c.model,
            "heads": c.heads,
            "train_accuracy": self.train.node,
            "test_accuracy": self.test.node,
            "train_graph_accuracy": self.train.graph,
            "test_graph_accuracy": self.test.graph,
            "train_graphs": self.train.num_graphs,
            "test_graphs": self.test.num_graphs,
            "steps": self.steps,
            "graphs_seen": self.graphs_seen,
            "solved_at_step": self.solved_at_step,
            "train_seconds": round(self.train_seconds, 3),
            "eval_seconds": round(self.eval_seconds, 3),
        }


@torch.no_grad()
def evaluate_lookup(
    model: LookupModel, permutations: Tensor, batch_size: int = 1024
) -> LookupAccuracy:
    """Node and graph accuracy of ``model`` on the graphs of ``permutations`` ``[N, k]``.

    Runs in evaluation mode and restores the previous mode. An empty set gives NaN.
    """
    n = permutations.size(0)
    if n == 0:
        return LookupAccuracy(node=math.nan, graph=math.nan, num_graphs=0)
    was_training = model.training
    model.eval()
    correct_nodes = correct_graphs = 0
    for start in range(0, n, batch_size):
        batch = make_batch(permutations[start : start + batch_size])
        logits = model(batch.tokens, batch.edge_index, batch.query_index)  # [B·k, k]
        hits = (logits.argmax(dim=-1) == batch.y).view(batch.num_graphs, batch.k)  # [B, k]
        correct_nodes += int(hits.sum())
        correct_graphs += int(hits.all(dim=1).sum())
    model.train(was_training)
    k = permutations.size(1)
    return LookupAccuracy(node=correct_nodes / (n * k), graph=correct_graphs / n, num_graphs=n)


def _subset(permutations: Tensor, size: int | None, generator: torch.Generator) -> Tensor:
    if size is None or permutations.size(0) <= size:
        return permutations
    return permutations[torch.randperm(permutations.size(0), generator=generator)[:size]]


def train_lookup(
    problem: DictionaryLookup,
    model_config: LookupModelConfig,
    config: LookupTrainConfig | None = None,
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> LookupResult:
    """Train a :class:`LookupModel` on ``problem.train`` and evaluate it on both splits.

    ``on_eval`` is called after each periodic evaluation with that history row (step,
    learning rate, loss, subset accuracies): a hook for progress bars and logs.
    """
    config = config or LookupTrainConfig()
    if model_config.k != problem.k:
        raise ValueError(
            f"model_config.k must equal the problem size k={problem.k}, got {model_config.k}"
        )
    if problem.train.size(0) == 0:
        raise ValueError(f"the problem of size k={problem.k} has no training graphs")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = LookupModel(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience
    )
    eval_train = _subset(problem.train, config.eval_graphs, generator)
    eval_test = _subset(problem.test, config.eval_graphs, generator)

    history: list[dict[str, float]] = []
    order = torch.empty(0, dtype=torch.long)
    position = 0
    solved_at: int | None = None
    graphs_seen = 0
    eval_seconds = 0.0
    step = 0
    start = time.perf_counter()
    model.train()
    for step in range(1, config.steps + 1):
        if position >= order.numel():  # a new pass over the training set
            order = torch.randperm(problem.train.size(0), generator=generator)
            position = 0
        chosen = order[position : position + config.batch_size]
        position += config.batch_size
        batch = make_batch(problem.train[chosen])
        logits = model(batch.tokens, batch.edge_index, batch.query_index)  # [B·k, k]
        loss = nn.functional.cross_entropy(logits, batch.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        graphs_seen += batch.num_graphs

        if step % config.eval_every == 0 or step == config.steps:
            eval_start = time.perf_counter()
            train_acc = evaluate_lookup(model, eval_train)
            test_acc = evaluate_lookup(model, eval_test)
            eval_seconds += time.perf_counter() - eval_start
            monitored = test_acc.node if test_acc.num_graphs else train_acc.node
            scheduler.step(monitored)
            row = {
                "step": step,
                "lr": optimizer.param_groups[0]["lr"],
                "loss": float(loss.detach()),
                "train_accuracy": train_acc.node,
                "test_accuracy": test_acc.node,
            }
            history.append(row)
            if on_eval is not None:
                on_eval(row)
            solved = train_acc.node == 1.0 and (test_acc.num_graphs == 0 or test_acc.node == 1.0)
            if solved and solved_at is None:
                solved_at = step
            if solved and config.stop_when_solved:
                break
    train_seconds = time.perf_counter() - start - eval_seconds

    eval_start = time.perf_counter()
    final_size = config.final_eval_graphs
    final_train = evaluate_lookup(model, _subset(problem.train, final_size, generator))
    final_test = evaluate_lookup(model, _subset(problem.test, final_size, generator))
    eval_seconds += time.perf_counter() - eval_start
    return LookupResult(
        model=model,
        train=final_train,
        test=final_test,
        steps=step,
        graphs_seen=graphs_seen,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        solved_at_step=solved_at,
        history=history,
    )


def lookup_checkpoint_payload(
    result: LookupResult, problem: DictionaryLookup, config: LookupTrainConfig
) -> dict:
    """The dict that :func:`gatkit.train.checkpoint.save_checkpoint` writes for a lookup model.

    ``model_args`` records how to rebuild the data (``k``, ``seed``) so that attention can be
    inspected on the same problem later.
    """
    return {
        "model_kind": LOOKUP_MODEL_KIND,
        "config": result.model.config.to_dict(),
        "model_args": {"problem_seed": problem.seed},
        "model_state": result.model.state_dict(),
        "train_config": asdict(config),
        "summary": result.summary(),
        "finished": True,
    }
