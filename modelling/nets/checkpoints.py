"""Checkpoints: state dicts with the config, seed, step and git commit that made them.

They are written atomically and loaded with ``weights_only=True`` (a file that is not a plain state
dict is refused without executing anything), and a checkpoint made with another config is refused,
naming the keys that differ.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from data_schema.io import atomic_write_bytes
from data_schema.provenance import git_commit

FORMAT = "gvr-chf-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not a state dict, or from another config."""


def payload(kind: str, *, models: dict[str, torch.nn.Module], config: dict, seed: int, step: int,
            optimizers: dict[str, torch.optim.Optimizer] | None = None, extra: dict | None = None) -> dict:
    """The dict that is saved: states, what made them and where training stood."""
    return {
        "format": FORMAT,
        "kind": kind,
        "config": config,
        "seed": seed,
        "step": step,
        "git_commit": git_commit(),
        "models": {name: m.state_dict() for name, m in models.items()},
        "optimizers": {name: o.state_dict() for name, o in (optimizers or {}).items()},
        "extra": extra or {},
    }


def to_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save(path: str | Path, state: dict) -> None:
    atomic_write_bytes(path, to_bytes(state))


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                out.append(where)
            else:
                out += _differences(a[key], b[key], where)
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [] if list(a) == list(b) else [prefix]
    return [] if a == b else [prefix]


def load(path: str | Path, *, kind: str | None = None, config: dict | None = None) -> dict:
    """Load a checkpoint safely and check it belongs to `kind` and `config`.

    Raises
    ------
    CheckpointError
        When the file cannot be read with ``weights_only=True`` (it holds code or arbitrary objects),
        is not one of this project's checkpoints, is of another kind, or was made with another
        config (the message lists the keys that differ).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for foreign files
        raise CheckpointError(f"{path}: not a loadable state dict ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a GVR-CHF checkpoint (expected a dict with format {FORMAT!r})")
    if kind is not None and state.get("kind") != kind:
        raise CheckpointError(f"{path}: a {state.get('kind')!r} checkpoint, expected {kind!r}")
    if config is not None:
        differ = _differences(state.get("config"), config)
        if differ:
            raise CheckpointError(f"{path}: made with another config; keys that differ: {', '.join(differ)}")
    return state
