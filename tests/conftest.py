"""Shared fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Starting R in-process (pymer4 through rpy2) rewrites environment variables such as LD_LIBRARY_PATH;
# subprocesses started by tests must see the environment as it was before any test ran.
_START_ENVIRONMENT = dict(os.environ)


def clean_environment() -> dict[str, str]:
    """The environment as the test session found it, for subprocesses (module fixtures call this)."""
    return {k: v for k, v in _START_ENVIRONMENT.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}


def gvr_executable() -> str:
    """The installed ``gvr`` console script (beside this interpreter, else on PATH)."""
    exe = Path(sys.executable).with_name("gvr")
    return str(exe) if exe.exists() else shutil.which("gvr")


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment as the test session found it, for subprocesses."""
    return clean_environment()


# ---- the tiny study, built once per test session --------------------------------------------------
# Building the tiny profile's cohort, training and GVRs takes 5-20 s; nine modules need one. They get
# a copy of the one built here, so a test that writes into its bundle never changes another's.


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """The tiny profile's bundle through the train stage (read it; copy it to write)."""
    from modelling.config import load_config
    from modelling.stages.cohort import build_cohort
    from modelling.stages.train import build_training

    cfg = load_config("tiny")
    root = tmp_path_factory.mktemp("tiny-session") / "trained"
    build_cohort(cfg, root, workers=1)
    build_training(cfg, root)
    return root


@pytest.fixture(scope="session")
def tiny_explained(tiny_trained, tmp_path_factory):
    """The tiny profile's bundle with GVRs (3 of kind ``gvr`` per model; read it; copy it to write)."""
    from modelling.config import load_config
    from modelling.stages.explain import build_explanations

    root = copy_bundle(tiny_trained, tmp_path_factory.mktemp("tiny-session") / "explained")
    build_explanations(load_config("tiny"), root)
    return root


def copy_bundle(source, destination):
    """A bundle copied whole (manifest, tables, images, work checkpoints), for a test that writes."""
    import shutil

    shutil.copytree(source, destination)
    return destination


# ---- the whole tiny study, as `make reproduce > log` builds it, once per test session --------------
# `gvr reproduce --config tiny` takes 1.5-2.5 min on 2 cores; the CLI's log test and the manuscript's
# tests read the same run instead of building two.


@pytest.fixture(scope="session")
def tiny_reproduced(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``gvr reproduce --config tiny --out <tmp>/study`` run as a subprocess whose stderr is not a
    terminal (so every stage logs), and what it printed. Read the study; copy it to write."""
    study = tmp_path_factory.mktemp("tiny-reproduced") / "study"
    env = {**clean_environment(), "GVR_PROGRESS_EVERY": "0", "COLUMNS": "200"}
    env.pop("GVR_PROGRESS", None)
    run = subprocess.run([gvr_executable(), "reproduce", "--config", "tiny", "--out", str(study)],
                         capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL)
    return study, run
