"""The simulated reader stage: the phantom study's reader assessments, from the GVRs' faithfulness."""

from __future__ import annotations

import dataclasses
import logging

from data_schema import Bundle
from modelling.config import StudyConfig
from modelling.readers.simulated import DEFAULT_READERS, simulate

STAGE = "readers"
log = logging.getLogger(__name__)


def build_simulated_readers(config: StudyConfig, out, *, force: bool = False) -> Bundle:
    """Write ``tables/reader_assessments.parquet`` (simulated) from the baselines stage's faithfulness.

    Raises
    ------
    ValueError
        When the bundle has no faithfulness table (real data have no masks: use human readers).
    """
    bundle = Bundle(out, create=False)
    human = bundle.files.get("tables/reader_assessments.parquet")
    if human is not None and human.stage != STAGE and not force:
        log.warning("%s: reader assessments from stage %r are kept; simulated readers are not run over them "
                    "(force=True replaces them)", bundle.root, human.stage)
        return bundle
    if "tables/faithfulness.parquet" not in bundle.files:
        raise ValueError(f"{bundle.root}: no faithfulness table; simulated readers need the phantom's masks "
                         f"(run `gvr baselines {bundle.root}` on a phantom bundle)")
    readers = [r for r in DEFAULT_READERS if r.name in config.readers.readers]
    if len(readers) != len(config.readers.readers):
        missing = sorted(set(config.readers.readers) - {r.name for r in readers})
        raise ValueError(f"no simulated behaviour for reader(s) {missing}; simulated readers: "
                         f"{[r.name for r in DEFAULT_READERS]}")

    def body(stage):
        table = simulate(bundle.read_table("faithfulness"), bundle.read_table("gvr_index"),
                         bundle.read_table("radiographs"), readers=tuple(readers), rounds=config.readers.rounds,
                         features=config.readers.features, rng=[config.seed, 70])
        stage.write_table("reader_assessments", table)

    key = {"readers": [dataclasses.asdict(r) for r in readers], "rounds": config.readers.rounds,
           "features": list(config.readers.features)}
    bundle.run_stage(STAGE, body, config=key, seed=config.seed,
                     inputs=["tables/faithfulness.parquet", "tables/gvr_index.parquet"], force=force)
    return bundle
