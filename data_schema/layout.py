"""Where a bundle keeps its radiographs: image and mask stacks in shards of :data:`SHARD_SIZE`.

The tables record each radiograph's stack (``radiographs.image_path``) and its index in it, so these
names are part of the bundle's format, like the table paths of :mod:`data_schema.registry`.
"""

from __future__ import annotations

#: Radiographs per stack: images/radiographs-NNNNN.npy (uint8) and masks/masks-NNNNN.npz (bits).
SHARD_SIZE = 1024


def image_path(shard: int) -> str:
    """The stack of radiographs number `shard`, relative to the bundle root."""
    return f"images/radiographs-{shard:05d}.npy"


def mask_path(shard: int) -> str:
    """The stack of feature masks number `shard` (the phantom's, or real radiographs' given to the ingest)."""
    return f"masks/masks-{shard:05d}.npz"
