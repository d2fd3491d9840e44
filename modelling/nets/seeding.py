"""Seeded blocks that leave the caller's random state as it was, on the CPU and on every GPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generators seeded with `seed` for the block, then restored: the CPU's and, where there
    are GPUs, every GPU's (``torch.manual_seed`` seeds them all, so forking only the CPU's left the GPUs'
    reseeded).

    >>> _ = torch.manual_seed(1)
    >>> before = torch.rand(1)
    >>> _ = torch.manual_seed(1)
    >>> with seeded(7):
    ...     inside = torch.rand(1)
    >>> bool(torch.equal(torch.rand(1), before))
    True
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
