"""What the model configurations share: the plain-dict round trip and the field checks.

Every check raises ``ValueError`` naming the field, what it must be and what it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = [
    "ConfigRecord",
    "require_choice",
    "require_optimiser",
    "require_positive_ints",
    "require_probabilities",
    "require_shared_weights_need_gatv2",
]

Config = TypeVar("Config", bound="ConfigRecord")


class ConfigRecord:
    """Mixin for config dataclasses: checked on creation, ``to_dict`` / ``from_dict``.

    A subclass defines ``validate()``; the dataclass calls it after ``__init__``.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming a field that is out of range (subclasses)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for checkpoints and JSON output)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[Config], values: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are refused with their names."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} fields {unknown}; expected a subset of {known}"
            )
        return cls(**values)


def require_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def require_positive_ints(config: Any, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def require_probabilities(config: Any, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


def require_optimiser(config: Any) -> None:
    """``lr > 0`` and ``weight_decay >= 0``."""
    if config.lr <= 0:
        raise ValueError(f"lr must be > 0, got {config.lr!r}")
    if config.weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {config.weight_decay!r}")


def require_shared_weights_need_gatv2(config: Any) -> None:
    if config.share_weights and config.operator != "gatv2":
        raise ValueError(
            f"share_weights=True needs operator='gatv2', got operator={config.operator!r}"
        )
