"""Seeds, random-number-generator snapshots and the deterministic mode.

A run is reproducible when every source of randomness is seeded: Python's ``random``,
NumPy's global generator and torch's CPU (and CUDA) generators. To resume a run to the
same weights, the states of those generators are saved with each checkpoint and restored
on resume, so the dropout masks drawn after the restart are the ones the uninterrupted run
would have drawn.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy and torch (CPU and every CUDA device) with ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Switch torch to deterministic kernels (``torch.use_deterministic_algorithms``).

    An operation without a deterministic implementation then raises instead of running.
    On CUDA this also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment.
    """
    torch.use_deterministic_algorithms(enabled)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = not enabled
        torch.backends.cudnn.deterministic = enabled


def capture_rng_state() -> dict[str, Any]:
    """Snapshot of every generator, made of tensors, ints, strings and tuples only.

    (Safe for ``torch.load(weights_only=True)``: NumPy's key array is stored as a tensor.)
    """
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put every generator back into the state captured by :func:`capture_rng_state`."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
