r"""Graph classification under the honest protocol of Errica et al. (ICLR 2020).

For ``K`` outer folds (stratified by class, seeded):

1. the outer *test* fold is set aside;
2. the rest is split, stratified, into an inner *training* part and a *hold-out* part
   (``holdout_fraction``, 10 %);
3. a freshly initialised model is trained on the training part; after every epoch it is
   evaluated on the hold-out, and the hold-out alone decides early stopping and which
   epoch's weights are kept (:class:`~gatkit.train.early_stopping.GATEarlyStopping`: kept
   when hold-out loss :math:`\le` its minimum **and** accuracy :math:`\ge` its maximum;
   stop after ``patience`` epochs without either improving);
4. the kept model is evaluated **once** on the test fold.

Reported: per-fold test accuracies :math:`a_1 \dots a_K`, their mean and their standard
deviation :math:`\sqrt{\frac{1}{K}\sum_k (a_k - \bar a)^2}` (population, ``ddof=0``).

Hyper-parameters are fixed in advance (no grid search); the hold-out selects the epoch only.
Real-valued node-feature columns (e.g. PROTEINS' attribute) are standardised with the mean
and standard deviation over the nodes of the inner training part; one-hot columns are left
as they are.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gatkit.data.batch import GraphBatch, GraphLoader
from gatkit.data.graph import Graph
from gatkit.errors import GraphInputError
from gatkit.models.graph_classifier import GraphClassifier, GraphClassifierConfig
from gatkit.train.early_stopping import GATEarlyStopping

__all__ = [
    "CrossValidationConfig",
    "CrossValidationResult",
    "FoldResult",
    "cross_validate",
    "evaluate",
    "stratified_folds",
    "stratified_holdout",
    "train_fold",
]


@dataclass
class CrossValidationConfig:
    """Protocol and optimisation settings (fixed before any run; not tuned on test folds).

    Attributes:
        folds: number of outer folds ``K`` (Errica et al.: 10).
        holdout_fraction: share of each training fold held out for model selection (10 %).
        max_epochs: cap on epochs per fold.
        patience: epochs without hold-out improvement that end a fold's training.
        batch_size: graphs per mini-batch.
        lr: Adam learning rate (0.005, the GAT paper's; 0.001 under-fitted MUTAG's training
            folds at 5 steps per epoch).
        weight_decay: L2 coefficient (Adam's ``weight_decay``).
        seed: seeds the folds, the hold-outs, the initialisations and the batch order.
        standardize: standardise real-valued node-feature columns (training-part statistics).
    """

    folds: int = 10
    holdout_fraction: float = 0.1
    max_epochs: int = 200
    patience: int = 50
    batch_size: int = 32
    lr: float = 5e-3
    weight_decay: float = 0.0
    seed: int = 0
    standardize: bool = True

    def __post_init__(self) -> None:
        for name in ("folds", "max_epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in (0, 1), got {self.holdout_fraction}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(
                f"lr must be > 0 and weight_decay >= 0, got lr={self.lr}, "
                f"weight_decay={self.weight_decay}"
            )


@dataclass
class FoldResult:
    """One outer fold: sizes, the kept epoch and the single test evaluation."""

    fold: int
    test_accuracy: float
    best_epoch: int
    epochs_run: int
    holdout_accuracy: float
    holdout_loss: float
    train_size: int
    holdout_size: int
    test_size: int
    seconds: float


@dataclass
class CrossValidationResult:
    """All folds, their mean and standard deviation, and the configuration used."""

    dataset: str
    folds: list[FoldResult]
    model_config: dict[str, Any]
    cv_config: dict[str, Any]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracies(self) -> list[float]:
        """Test accuracy of every fold."""
        return [f.test_accuracy for f in self.folds]

    @property
    def mean(self) -> float:
        """Mean test accuracy over the folds."""
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Population standard deviation (``ddof=0``) of the fold accuracies."""
        return float(np.std(self.accuracies))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the object ``gatkit train --task graph --json`` prints)."""
        return {
            "dataset": self.dataset,
            "task": "graph",
            "protocol": (
                f"stratified {len(self.folds)}-fold CV; stratified "
                f"{self.cv_config['holdout_fraction']:.0%} hold-out of each training fold for "
                "early stopping / model selection; each test fold evaluated once"
            ),
            "test_accuracy_mean": self.mean,
            "test_accuracy_std": self.std,
            "fold_accuracies": self.accuracies,
            "folds": [dataclasses.asdict(f) for f in self.folds],
            "config": {"model": self.model_config, "cv": self.cv_config},
            "seconds": self.seconds,
            **self.extra,
        }


# ----------------------------------------------------------------------- splitting


def _check_labels(labels: object) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise GraphInputError(
            f"labels must be a non-empty 1-D integer array, got shape {array.shape} and "
            f"dtype {array.dtype}"
        )
    return array.astype(np.int64)


def stratified_folds(labels: Sequence[int] | np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Partition ``0 … n-1`` into ``folds`` test folds with the class proportions kept.

    The indices of each class are permuted (seeded), then dealt round-robin over the folds;
    the dealing continues from class to class, so fold sizes differ by at most one and each
    class's count differs by at most one between folds.

    Returns:
        ``folds`` sorted int64 index arrays, disjoint, covering every index.
    """
    labels = _check_labels(labels)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= labels.size:
        raise GraphInputError(f"folds must be an int in [2, {labels.size}], got {folds!r}")
    rng = np.random.default_rng(seed)
    assignment = np.empty(labels.size, dtype=np.int64)
    position = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = (position + np.arange(members.size)) % folds
        position += members.size
    return [np.flatnonzero(assignment == k) for k in range(folds)]


def stratified_holdout(
    indices: np.ndarray, labels: Sequence[int] | np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into ``(train, holdout)`` with about ``fraction`` of each class held out.

    Each class with ``n_c`` members among ``indices`` gives ``round(fraction * n_c)`` of them
    (at least one when ``n_c >= 2``) to the hold-out, chosen by a seeded permutation.
    """
    labels = _check_labels(labels)
    indices = np.asarray(indices, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for label in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == label])
        count = int(round(fraction * members.size))
        if members.size >= 2:
            count = min(max(count, 1), members.size - 1)
        held.append(members[:count])
    holdout = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    train = np.setdiff1d(indices, holdout)
    return train, holdout


# ------------------------------------------------------------------------ training


def _standardizer(graphs: Sequence[Graph]) -> Callable[[Graph], Graph] | None:
    """Column standardisation fitted on ``graphs``' nodes, for columns that are not 0/1."""
    x = torch.cat([g.x for g in graphs], dim=0)  # [N_train, F]
    binary = ((x == 0) | (x == 1)).all(dim=0)  # [F]
    if bool(binary.all()):
        return None
    mean = torch.where(binary, torch.zeros_like(x[0]), x.mean(dim=0))
    std = torch.where(binary, torch.ones_like(x[0]), x.std(dim=0).clamp(min=1e-6))

    def apply(graph: Graph) -> Graph:
        return dataclasses.replace(graph, x=(graph.x - mean) / std)

    return apply


def _forward(model: GraphClassifier, batch: GraphBatch) -> Tensor:
    return model(
        batch.x,
        batch.edge_index,
        batch.batch,
        num_graphs=batch.num_graphs,
        edge_label=batch.edge_label,
    )


def _targets(batch: GraphBatch) -> Tensor:
    if batch.y is None or batch.y.numel() != batch.num_graphs:
        raise GraphInputError(
            "graph classification needs exactly one label y per graph; got "
            f"{None if batch.y is None else batch.y.numel()} labels for {batch.num_graphs} graphs"
        )
    return batch.y.long()


@torch.no_grad()
def evaluate(model: GraphClassifier, loader: GraphLoader) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` over ``loader``, in evaluation mode."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct, count = 0.0, 0, 0
    for batch in loader:
        batch = batch.to(device)
        logits = _forward(model, batch)  # [G, C]
        y = _targets(batch)  # [G]
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=-1) == y).sum())
        count += y.numel()
    return loss_sum / count, correct / count


def train_fold(
    train_graphs: Sequence[Graph],
    holdout_graphs: Sequence[Graph],
    model_config: GraphClassifierConfig,
    config: CrossValidationConfig,
    seed: int,
    progress: tqdm | None = None,
    device: torch.device | str = "cpu",
) -> tuple[GraphClassifier, dict[str, Any]]:
    """Train one model; return it with the weights of the kept epoch, and a summary."""
    torch.manual_seed(seed)
    model = GraphClassifier(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train_loader = GraphLoader(train_graphs, config.batch_size, shuffle=True, seed=seed)
    holdout_loader = GraphLoader(holdout_graphs, batch_size=256)
    stopper = GATEarlyStopping(patience=config.patience)
    best_state = copy.deepcopy(model.state_dict())
    epochs_run = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        for batch in train_loader:
            batch = batch.to(device)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(_forward(model, batch), _targets(batch))
            loss.backward()
            optimizer.step()
        val_loss, val_acc = evaluate(model, holdout_loader)
        epochs_run = epoch
        decision = stopper.step(epoch, val_loss, val_acc)
        if decision.keep:
            best_state = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress.set_postfix(epoch=epoch, val_acc=f"{val_acc:.3f}", refresh=False)
        if decision.stop:
            break
    model.load_state_dict(best_state)
    summary = {
        "best_epoch": stopper.best_epoch or 0,
        "epochs_run": epochs_run,
        "holdout_accuracy": stopper.best_val_acc if stopper.best_val_acc is not None else math.nan,
        "holdout_loss": stopper.best_val_loss if stopper.best_val_loss is not None else math.nan,
    }
    return model, summary


def cross_validate(
    graphs: Sequence[Graph],
    model_config: GraphClassifierConfig,
    config: CrossValidationConfig | None = None,
    dataset: str = "",
    progress: bool = True,
    only_folds: Sequence[int] | None = None,
    on_fold_end: Callable[[FoldResult], None] | None = None,
    device: torch.device | str = "cpu",
) -> CrossValidationResult:
    """Run the protocol of the module docstring on ``graphs`` (each with ``y`` of shape [1]).

    Args:
        graphs: the dataset's graphs (e.g. a :class:`~gatkit.data.tu.TUDataset`).
        model_config: architecture, built afresh for every fold.
        config: protocol and optimisation settings.
        dataset: name recorded in the result.
        progress: show a tqdm bar over the folds (on stderr).
        only_folds: run only these outer folds (for smoke tests); the folds are still the
            ones of the full ``config.folds`` partition.
        on_fold_end: called with each :class:`FoldResult` as soon as its fold is done.
        device: where the model and the batches live.
    """
    config = config or CrossValidationConfig()
    graphs = list(graphs)
    labels = np.array([int(g.y.reshape(-1)[0]) for g in graphs], dtype=np.int64)
    test_folds = stratified_folds(labels, config.folds, config.seed)
    chosen = list(range(config.folds)) if only_folds is None else list(only_folds)
    for k in chosen:
        if not 0 <= k < config.folds:
            raise GraphInputError(f"only_folds holds {k}; expected values in [0, {config.folds})")
    start = time.perf_counter()
    results: list[FoldResult] = []
    bar = tqdm(chosen, desc=f"{dataset or 'CV'} folds", unit="fold", disable=not progress)
    for k in bar:
        fold_start = time.perf_counter()
        test_idx = test_folds[k]
        rest = np.setdiff1d(np.arange(len(graphs)), test_idx)
        train_idx, holdout_idx = stratified_holdout(
            rest, labels, config.holdout_fraction, config.seed * 1000 + k
        )
        train_graphs = [graphs[i] for i in train_idx]
        holdout_graphs = [graphs[i] for i in holdout_idx]
        test_graphs = [graphs[i] for i in test_idx]
        transform = _standardizer(train_graphs) if config.standardize else None
        if transform is not None:
            train_graphs = [transform(g) for g in train_graphs]
            holdout_graphs = [transform(g) for g in holdout_graphs]
            test_graphs = [transform(g) for g in test_graphs]
        model, summary = train_fold(
            train_graphs,
            holdout_graphs,
            model_config,
            config,
            seed=config.seed * 1000 + k,
            progress=bar,
            device=device,
        )
        # The one and only evaluation on the test fold.
        _, test_acc = evaluate(model, GraphLoader(test_graphs, batch_size=256))
        results.append(
            FoldResult(
                fold=k,
                test_accuracy=test_acc,
                train_size=len(train_graphs),
                holdout_size=len(holdout_graphs),
                test_size=len(test_graphs),
                seconds=time.perf_counter() - fold_start,
                **summary,
            )
        )
        if on_fold_end is not None:
            on_fold_end(results[-1])
        accs = [r.test_accuracy for r in results]
        bar.set_postfix(mean_acc=f"{np.mean(accs):.3f}", last=f"{test_acc:.3f}")
    bar.close()
    return CrossValidationResult(
        dataset=dataset,
        folds=results,
        model_config=model_config.to_dict(),
        cv_config=dataclasses.asdict(config),
        seconds=time.perf_counter() - start,
    )
