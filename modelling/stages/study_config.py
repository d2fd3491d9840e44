"""The bundle's ``config.yaml``: the config its study was built with.

Commands given a bundle and no ``--config`` use it (``gvr train --bundle study/`` after ``gvr cohort
ingest --config tiny --out study/`` trains with the tiny profile, at the size the radiographs were
written), so every command that starts a bundle records it as the stage "config": ``gvr reproduce``,
``gvr cohort synth``, ``gvr cohort ingest`` and ``gvr train`` on a bundle without a cohort.
"""

from __future__ import annotations

import yaml

from data_schema import Bundle, Stage
from modelling.config import StudyConfig, config_to_dict

STAGE = "config"


def write_config(stage: Stage, config: StudyConfig) -> None:
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    stage.write_bytes("config.yaml", text.encode("utf-8"))


def record_config(bundle: Bundle, config: StudyConfig, *, quiet: bool = False) -> None:
    """Write `config` as the bundle's ``config.yaml``; skipped when that config is recorded already, and
    then said only when not `quiet` (``gvr reproduce`` lists every stage; a cohort command, no news)."""
    if quiet and bundle.is_current(STAGE, config=config, seed=config.seed):
        return
    bundle.run_stage(STAGE, lambda st: write_config(st, config), config=config, seed=config.seed)
