"""The bundle's ``config.yaml``: the config its study was built with.

Commands given a bundle and no ``--config`` use it (``gvr train --bundle study/`` after ``gvr cohort
ingest --config tiny --out study/`` trains with the tiny profile, at the size the radiographs were
written), so every command that starts a bundle records it as the stage "config".
"""

from __future__ import annotations

import yaml

from data_schema import Bundle, Stage
from modelling.config import StudyConfig, config_to_dict

STAGE = "config"


def write_config(stage: Stage, config: StudyConfig) -> None:
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    stage.write_bytes("config.yaml", text.encode("utf-8"))


def record_config(bundle: Bundle, config: StudyConfig) -> None:
    """Write `config` as the bundle's ``config.yaml`` (silently skipped when that config is recorded already:
    several commands record it, and once is news)."""
    if not bundle.is_current(STAGE, config=config, seed=config.seed):
        bundle.run_stage(STAGE, lambda st: write_config(st, config), config=config, seed=config.seed)
