"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

# Starting R in-process (pymer4 through rpy2) rewrites environment variables such as LD_LIBRARY_PATH;
# subprocesses started by tests must see the environment as it was before any test ran.
_START_ENVIRONMENT = dict(os.environ)


def clean_environment() -> dict[str, str]:
    """The environment as the test session found it, for subprocesses (module fixtures call this)."""
    return {k: v for k, v in _START_ENVIRONMENT.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment as the test session found it, for subprocesses."""
    return clean_environment()
