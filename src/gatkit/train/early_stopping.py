r"""Early stopping exactly as in the GAT authors' code (Veličković et al., ICLR 2018).

After each epoch :math:`t` with validation loss :math:`\ell_t` and accuracy :math:`a_t`
(both measured in evaluation mode, loss without the L2 term), with running
:math:`\ell^\ast = \min_{s<t} \ell_s` (initially :math:`+\infty`) and
:math:`a^\ast = \max_{s<t} a_s` (initially 0):

- the epoch **improves** when :math:`\ell_t \le \ell^\ast` **or** :math:`a_t \ge a^\ast`;
  then the patience counter is reset to 0 and :math:`\ell^\ast, a^\ast` are updated;
- when both hold at once (:math:`\ell_t \le \ell^\ast` **and** :math:`a_t \ge a^\ast`), the
  model of this epoch becomes the one kept ("best") — the last such epoch wins;
- otherwise the counter grows by one, and training stops when it reaches ``patience``
  (100 in the paper).

The test accuracy reported is that of the kept model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StopDecision:
    """What one call of :meth:`GATEarlyStopping.step` decided."""

    improved: bool  # loss <= min or acc >= max: patience counter reset
    keep: bool  # loss <= min and acc >= max: this epoch's model becomes the kept one
    stop: bool  # patience exhausted: end training after this epoch


def restore_state(stopper: Any, state: dict[str, Any]) -> None:
    """Set every attribute named by ``stopper.state_dict()`` from ``state`` (lists copied).

    A state that lacks one of them (another rule's, a damaged checkpoint) is refused with
    the missing names.
    """
    expected = stopper.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"early-stopping state lacks the keys {missing}")
    for key in expected:
        value = state[key]
        setattr(stopper, key, list(value) if isinstance(value, list) else value)


class GATEarlyStopping:
    """The GAT protocol's patience rule on validation loss **or** accuracy.

    Args:
        patience: epochs in a row without improvement that end training (paper: 100).
    """

    def __init__(self, patience: int = 100) -> None:
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}")
        self.patience = patience
        self.min_val_loss = math.inf
        self.max_val_acc = 0.0
        self.bad_epochs = 0
        self.best_epoch: int | None = None
        self.best_val_loss: float | None = None
        self.best_val_acc: float | None = None

    def step(self, epoch: int, val_loss: float, val_acc: float) -> StopDecision:
        """Record epoch ``epoch``'s validation loss and accuracy; say what to do."""
        val_loss, val_acc = float(val_loss), float(val_acc)
        loss_ok = val_loss <= self.min_val_loss
        acc_ok = val_acc >= self.max_val_acc
        if loss_ok or acc_ok:
            keep = loss_ok and acc_ok
            if keep:
                self.best_epoch = epoch
                self.best_val_loss = val_loss
                self.best_val_acc = val_acc
            self.min_val_loss = min(self.min_val_loss, val_loss)
            self.max_val_acc = max(self.max_val_acc, val_acc)
            self.bad_epochs = 0
            return StopDecision(improved=True, keep=keep, stop=False)
        self.bad_epochs += 1
        return StopDecision(improved=False, keep=False, stop=self.bad_epochs >= self.patience)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the rule after a restart."""
        return {
            "patience": self.patience,
            "min_val_loss": self.min_val_loss,
            "max_val_acc": self.max_val_acc,
            "bad_epochs": self.bad_epochs,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "best_val_acc": self.best_val_acc,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`."""
        restore_state(self, state)


class MinValidationLossSelection:
    r"""PyG's citation-benchmark rule: keep the epoch of least validation loss.

    After each epoch :math:`t` with validation loss :math:`\ell_t`:

    - the epoch's model becomes the one kept when :math:`\ell_t < \min_{s<t} \ell_s`;
    - once :math:`t > T/2` (:math:`T` = ``max_epochs``, 1000 in that benchmark), training
      stops at the first epoch with :math:`\ell_t > \frac{1}{P}\sum_{s=t-P}^{t-1} \ell_s`,
      the mean of the ``patience`` :math:`P` (100) losses before it.

    Not the GAT paper's protocol (:class:`GATEarlyStopping`); it is the rule behind the
    Planetoid figures of PyG's ``benchmark/citation`` scripts, offered so that numbers can be
    compared with theirs.
    """

    def __init__(self, patience: int = 100, max_epochs: int = 1000) -> None:
        for name, value in (("patience", patience), ("max_epochs", max_epochs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.patience = patience
        self.max_epochs = max_epochs
        self.history: list[float] = []  # the last patience + 1 validation losses
        self.best_epoch: int | None = None
        self.best_val_loss: float = math.inf
        self.best_val_acc: float | None = None

    def step(self, epoch: int, val_loss: float, val_acc: float) -> StopDecision:
        """Record epoch ``epoch``'s validation loss and accuracy; say what to do."""
        val_loss, val_acc = float(val_loss), float(val_acc)
        keep = val_loss < self.best_val_loss
        if keep:
            self.best_epoch, self.best_val_loss, self.best_val_acc = epoch, val_loss, val_acc
        earlier = self.history[-self.patience :]
        self.history = [*earlier, val_loss]
        stop = (
            epoch > self.max_epochs // 2
            and len(earlier) > 0
            and val_loss > sum(earlier) / len(earlier)
        )
        return StopDecision(improved=keep, keep=keep, stop=stop)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the rule after a restart."""
        return {
            "patience": self.patience,
            "max_epochs": self.max_epochs,
            "history": list(self.history),
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "best_val_acc": self.best_val_acc,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`."""
        restore_state(self, state)


def make_stopper(rule: str, patience: int, max_epochs: int):
    """The early-stopping object of ``rule`` (``GATConfig.stopping``: gat or min-val-loss)."""
    if rule == "gat":
        return GATEarlyStopping(patience)
    if rule == "min-val-loss":
        return MinValidationLossSelection(patience, max_epochs)
    raise ValueError(f"stopping rule must be 'gat' or 'min-val-loss', got {rule!r}")
