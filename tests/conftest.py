"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The shared data folder when GATKIT_DATA is not set: ``<repo>/../shared/data``.
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The folder of real datasets (``$GATKIT_DATA``, else ``<repo>/../shared/data``).

    Never skips: a missing folder fails the test with a message saying where to point
    ``GATKIT_DATA``.
    """
    folder = Path(os.environ.get("GATKIT_DATA") or DEFAULT_SHARED_DATA).expanduser()
    if not (folder / "planetoid").is_dir():
        pytest.fail(
            f"dataset folder {folder} not found (or it has no planetoid/ subfolder): set "
            "GATKIT_DATA to the shared data folder (the Makefile sets it to ../shared/data)",
            pytrace=False,
        )
    return folder


@pytest.fixture(autouse=True)
def _torch_mask_generator():
    """Every test starts with torch's mask stream (``F.dropout``'s masks), whatever
    ``GATKIT_MASKS`` says; the tests of the Philox generator switch to it themselves."""
    from gatkit import ops

    with ops.use_mask_generator("torch"):
        yield
