"""Training and GVRs under ``torchrun``: the process group, this process's share of a batch, and
agreeing on decisions. Outside a process group every helper is the single-process identity.

NCCL on GPUs, gloo on CPUs; each process takes a slice of every global batch and rank 0 writes.
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


# torch 2.13's deprecations of the two calls below (see :func:`wrap` and :func:`summed_across_processes`), ignored
# once for the process: a warnings.catch_warnings() around each call, on every batch, made every once-per-place
# warning elsewhere in training show again each time
warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated",
                        category=FutureWarning)


def init_from_environment(device: str = "auto") -> int:
    """Join the process group that torchrun describes (NCCL when the run's `device`, ``runtime.device``,
    is a GPU, else gloo); return the rank.

    Without torchrun (``WORLD_SIZE`` unset or 1) nothing is started and the rank is 0.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    if not dist.is_initialized():
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("runtime.device is 'cuda' but no CUDA device is available")
        on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        backend = "nccl" if on_gpu else "gloo"  # NCCL reduces only CUDA tensors
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        # leave the group before the interpreter exits: gloo's threads torn down by exit itself can
        # abort the process ("terminate called without an active exception") after the work is done
        atexit.register(_leave)
    return dist.get_rank()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def several_processes() -> bool:
    """Whether this process is one of several (a process group of more than one)."""
    return distributed()[1] > 1


def barrier() -> None:
    """Wait for every process; nothing outside a process group."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_decision(decide: Callable[[], bool]) -> bool:
    """Rank 0's ``decide()``, shared with every process (``decide`` runs on rank 0 only).

    NCCL moves only CUDA tensors, so the flag travels on this process's GPU there, on the CPU with gloo.
    """
    rank, world = distributed()
    if world == 1:
        return bool(decide())
    on_gpu = dist.get_backend() == "nccl"
    flag = torch.zeros(1, dtype=torch.int64,
                       device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
    if rank == 0:
        flag.fill_(int(bool(decide())))
    dist.broadcast(flag, 0)
    return bool(flag.item())


def local_slice(batch: int) -> slice:
    """This process's rows of a global batch of `batch` rows."""
    rank, world = distributed()
    if batch % world:
        raise ValueError(f"batch size {batch} must be divisible by the number of processes ({world})")
    size = batch // world
    return slice(rank * size, (rank + 1) * size)


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """The module as DistributedDataParallel under torchrun, else itself.

    Buffers are not broadcast: the batch norm's running statistics come from the global batch already
    (:class:`modelling.nets.networks.GlobalBatchNorm2d`). torch 2.13 deprecates ``broadcast_buffers`` for
    ``forward_sync_buffers``, whose ``False`` still syncs at init; its warning says to keep
    ``broadcast_buffers=False`` until ``init_sync_buffers`` exists, so it is silenced (at the top of this
    module), not printed to every user of ``torchrun ... gvr train``.
    """
    if not several_processes():
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def summed_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over every process, with gradients flowing back to each process's share.

    ``torch.distributed.nn.functional.all_reduce`` is the differentiable all-reduce; torch 2.13 deprecates
    it for ``torch.distributed._functional_collectives``, a private module. The warning is silenced (at the
    top of this module) until a public replacement exists (the gloo tests check that two processes train
    as one).
    """
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor)
