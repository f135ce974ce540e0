"""Importing gatkit (and its layers) never imports PyTorch Geometric."""

import subprocess
import sys


def test_importing_gatkit_does_not_import_pyg():
    code = (
        "import sys, gatkit, gatkit.nn, gatkit.ops, gatkit.interop;"
        "print('torch_geometric' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_interop_says_clearly_when_pyg_is_missing():
    code = (
        "import sys; sys.modules['torch_geometric'] = None\n"
        "from gatkit.interop import to_pyg\nfrom gatkit.nn import GATConv\n"
        "try:\n    to_pyg(GATConv(2, 2))\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "need PyTorch Geometric, which is not installed" in result.stdout, result.stderr
