"""Training checkpoints: written atomically, read back safely, checked for format and model.

A checkpoint is a ``torch.save`` of a plain dict:

=====================  ====================================================================
``format``, ``version``  ``"gatkit-checkpoint"`` and the layout version (:data:`VERSION`)
``model_kind``           which model wrote it (e.g. ``"gat-node-classifier"``)
``config``               the model's configuration as a plain dict
``model_args``           the other constructor arguments (input width, number of classes)
``model_state``          ``state_dict`` of the model at ``epoch``
``optimizer_state``      ``state_dict`` of the optimiser at ``epoch``
``epoch``                last finished epoch (1-based)
``early_stopping``       state of the early-stopping rule
``rng``                  states of the Python, NumPy and torch generators after ``epoch``
``best_state``           ``state_dict`` of the model kept by early stopping
``finished``             whether training ended (early stop or epoch cap)
=====================  ====================================================================

plus free-form metadata (dataset, seed). Writing goes to a temporary file in the same folder,
which is flushed, ``fsync``-ed and then renamed over the target with ``os.replace``: a crash
or error at any point leaves either the old checkpoint or the new one, never a torn file.
Reading uses ``torch.load(weights_only=True)``, which refuses to run code from the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gatkit.errors import CheckpointError

FORMAT = "gatkit-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("model_kind", "config", "model_args", "model_state")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format tag and version) to ``path`` atomically.

    The folder is created if needed. Returns the path written.
    """
    path = Path(path)
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks the keys {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": FORMAT, "version": VERSION, **payload}
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(folder: Path) -> None:
    """Make the rename durable (POSIX); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(
    path: str | os.PathLike[str], expected_kind: str | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` when the file is missing, unreadable, not a gatkit
    checkpoint, of a newer layout version, or (with ``expected_kind``) written by another
    kind of model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors have many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} is not a readable gatkit checkpoint ({type(error).__name__}: {reason})"
        ) from error
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(
            f"{path} is not a gatkit checkpoint: expected format tag {FORMAT!r}, got {found!r}"
        )
    version = record.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint layout version {version!r}; this gatkit reads versions "
            f"up to {VERSION}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise CheckpointError(f"{path} is a damaged gatkit checkpoint: it lacks {missing}")
    if expected_kind is not None and record["model_kind"] != expected_kind:
        raise CheckpointError(
            f"{path} holds a {record['model_kind']!r} model, expected {expected_kind!r}"
        )
    return record
