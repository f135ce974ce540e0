r"""Multi-process data-parallel training with ``torch.distributed``, launched by ``torchrun``.

Every process holds the whole graph and a replica of the model. Per step, each process
samples a batch from **its own shard** of the training nodes, computes the gradient
:math:`\nabla_\theta \mathcal{L}_r` of its batch loss, and
:class:`~torch.nn.parallel.DistributedDataParallel` replaces it by the average
:math:`\frac{1}{R}\sum_{r=1}^{R} \nabla_\theta \mathcal{L}_r` (all-reduce) before the
optimiser step, so the replicas stay identical. With ``R`` processes and batch size ``B``
per process, one step sees ``R B`` seeds and one epoch has ``1/R`` of the steps.

Launch (one machine, ``N`` processes)::

    torchrun --nproc_per_node=N -m gatkit.cli.main train --sampler neighbor ...

Several machines (run on each; ``--node-rank`` is not needed with rendezvous)::

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d \
        --rdzv-endpoint=HOST:29400 --rdzv-id=JOB -m gatkit.cli.main train --sampler neighbor ...

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them. The backend is
``nccl`` when CUDA is available (one GPU per process, ``cuda:LOCAL_RANK``) and ``gloo`` on
CPU. The training loop itself is :class:`gatkit.train.minibatch.MiniBatchNodeTrainer`,
which shards the seeds, reduces metrics and lets only rank 0 write files.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistributedContext",
    "init_distributed",
    "launched_by_torchrun",
    "replica_max_difference",
    "shutdown_distributed",
]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job.

    Attributes:
        rank: global rank in ``[0, world_size)``; rank 0 writes files.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on.
        backend: ``"gloo"``, ``"nccl"``, or ``"none"`` for a single process without a group.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether the environment describes a job of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise RuntimeError(
            f"environment variable {name} must be an int (set by torchrun), got {value!r}"
        ) from error


def init_distributed(
    backend: str | None = None, device: str | None = None, timeout_s: float = 1800.0
) -> DistributedContext:
    """Join the process group described by torchrun's environment variables.

    Args:
        backend: ``"gloo"`` or ``"nccl"`` (default: ``nccl`` when CUDA is available and
            ``device`` is not ``"cpu"``, else ``gloo``).
        device: ``"cpu"``, ``"cuda"`` (this process's GPU ``cuda:LOCAL_RANK``), or ``None``
            (CUDA when available).
        timeout_s: how long collective operations wait for the other processes.

    Without ``WORLD_SIZE > 1`` in the environment no group is created and a single-process
    context is returned.
    """
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but CUDA is not available")
    if not launched_by_torchrun():
        chosen = (
            torch.device(device)
            if device is not None
            else torch.device("cuda" if use_cuda else "cpu")
        )
        return DistributedContext(0, 1, 0, chosen, "none")
    rank, world_size, local_rank = (_env_int(name) for name in _ENV)
    if backend is None:
        backend = "nccl" if use_cuda else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl" and not use_cuda:
        raise ValueError("backend 'nccl' needs CUDA devices; use 'gloo' on CPU")
    if use_cuda:
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    else:
        chosen = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return DistributedContext(rank, world_size, local_rank, chosen, backend)


def shutdown_distributed(barrier: bool = True) -> None:
    """Leave the process group, if one was joined, after a barrier unless ``barrier=False``.

    Pass ``barrier=False`` when leaving because of an error: the other processes may never
    reach the barrier.
    """
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


@torch.no_grad()
def replica_max_difference(model: nn.Module) -> float:
    """Largest absolute difference of any parameter between this process and the others.

    Gathers the flattened parameters ``[P]`` of every process; ``0.0`` means the replicas
    are identical (and is returned without a group).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])  # [P]
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return max(float((other - gathered[0]).abs().max()) for other in gathered)
