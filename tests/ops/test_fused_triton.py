"""The Triton kernels (forward and backward) agree with the reference, in Triton's interpreter.

The cases live in ``triton_interpreter_cases.py`` and run in a fresh Python process with
``TRITON_INTERPRET=1`` set from the start (see that file for why). Skipped only where
:mod:`triton` is not installed (it is in the dev extra on Linux x86_64 only).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("triton_interpreter_cases.py")


@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (it is in the dev extra on Linux x86_64 only)",
)
def test_triton_kernels_match_reference_and_pass_gradcheck_in_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=900,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"{summary}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert " passed" in summary and "skipped" not in summary, summary
