"""The C++/OpenMP fused attention kernels for CPU, compiled on first use and cached.

``csrc/fused_attention.cpp`` (with ``csrc/masked_scale.cpp``, the byte-mask dropout of
:mod:`gatkit.nn.recomputed_dropout`, and ``csrc/huge_pages.cpp``, the huge-page CPU allocator
of :func:`gatkit.train.use_huge_pages`) is built with :func:`torch.utils.cpp_extension.load`
(JIT; the build lands in torch's extension cache, ``~/.cache/torch_extensions`` unless
``TORCH_EXTENSIONS_DIR`` says otherwise, so later processes only load it), for the CPU it
runs on (``-march=native``; see :func:`_cpu_tag`). When the build
fails (no compiler, no ninja, read-only cache) or ``GATKIT_NO_CPP=1`` is set, :func:`cpp_kernels`
returns ``None`` and the caller falls back to :mod:`gatkit.ops.fused_chunked`. Which path runs
is printed once per process on standard error.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["announce_once", "cpp_kernels", "cpp_kernels_if_built"]

_SOURCES = [
    Path(__file__).with_name("csrc") / name
    for name in ("fused_attention.cpp", "masked_scale.cpp", "huge_pages.cpp")
]
_state: dict[str, object] = {}


def announce_once(message: str) -> None:
    """Print ``message`` on standard error the first time it is given in this process."""
    said = _state.setdefault("said", set())
    if message not in said:  # type: ignore[operator]
        said.add(message)  # type: ignore[union-attr]
        print(f"gatkit: {message}", file=sys.stderr)


def _ninja_on_path() -> None:
    """Put the ``ninja`` of the pip package (a dependency) on PATH for torch's build step.

    torch looks for ``ninja`` on PATH; a virtual environment that is not activated has its
    ``bin`` folder off PATH, so a fresh machine without a system ninja would not find it.
    """
    try:
        import ninja  # the PyPI package ships the binary
    except ImportError:
        return
    folder = getattr(ninja, "BIN_DIR", None)
    path = os.environ.get("PATH", "")
    if folder and folder not in path.split(os.pathsep):
        os.environ["PATH"] = folder + os.pathsep + path


def _cpu_tag() -> str | None:
    """A short digest of this CPU's model and instruction-set flags (``None`` off Linux).

    The kernels are compiled for the CPU they run on (``-march=native``: the vector width
    speeds up GATv2's per-channel loops); the digest goes into the extension's name, so a
    cache folder shared by machines with different CPUs keeps one build per kind of CPU.
    """
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))]
    if not lines:
        return None
    return hashlib.sha1("\n".join(sorted(set(lines))).encode()).hexdigest()[:10]


def _build() -> ModuleType:
    """Compile (or load from the cache) the kernels for this CPU; generic ``-O3`` if that fails.

    A compiler that refuses the CPU-specific flags (an old gcc, another compiler) still gets
    the kernels, built without them.
    """
    from torch.utils.cpp_extension import load

    _ninja_on_path()
    tag = _cpu_tag()
    attempts = [(f"gatkit_fused_attention_{tag}", ["-march=native", "-mprefer-vector-width=256"])]
    attempts = (attempts if tag else []) + [("gatkit_fused_attention_generic", [])]
    failure: Exception | None = None
    for name, flags in attempts:
        try:
            return load(
                name=name,
                sources=[str(source) for source in _SOURCES],
                extra_cflags=["-O3", *flags, "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
        except Exception as error:  # the next attempt, or the caller, deals with it
            failure = error
    assert failure is not None
    raise failure


def cpp_kernels() -> ModuleType | None:
    """The compiled kernel module, or ``None`` where it cannot be built (reason printed once)."""
    if "module" not in _state:
        module: ModuleType | None = None
        if os.environ.get("GATKIT_NO_CPP", "") not in ("", "0"):
            reason = "GATKIT_NO_CPP is set"
        else:
            try:
                module = _build()
                reason = ""
            except Exception as error:  # any build failure means: use the fallback
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                reason = f"the C++ extension could not be built ({first_line[:200]})"
        _state["module"] = module
        if module is not None:
            announce_once("fused attention on CPU runs the C++/OpenMP kernels")
        else:
            announce_once(f"fused attention on CPU runs the chunked PyTorch kernels: {reason}")
    return _state["module"]  # type: ignore[return-value]


def cpp_kernels_if_built() -> ModuleType | None:
    """The kernel module if :func:`cpp_kernels` has already loaded it, else ``None`` (no build)."""
    return _state.get("module")  # type: ignore[return-value]
