"""The main job: every stage of the study, in order, into one bundle.

Each stage goes through :meth:`data_schema.Bundle.run_stage`, so a rerun with the same config skips
what is already built and a killed run resumes at the first incomplete stage. Stages that have not
been built yet are listed in :data:`PENDING`; :func:`reproduce` runs the rest and then refuses to
report success while any is pending.
"""

from __future__ import annotations

import logging
from pathlib import Path

from analysis.analyse import analyse_bundle, stale_assessments
from data_schema import Bundle
from data_schema.bundle import refuse_foreign_folder
from data_schema.io import sha256_file
from modelling.config import StudyConfig
from modelling.stages.baselines import build_baselines
from modelling.stages.cohort import build_cohort
from modelling.stages.explain import build_explanations
from modelling.stages.fidelity import build_fidelity
from modelling.stages.image_explain import build_own_image_rationales
from modelling.stages.image_fidelity import build_image_fidelity
from modelling.stages.image_model import build_image_model
from modelling.stages.readers import build_simulated_readers
from modelling.stages.shortcuts import build_shortcuts
from modelling.stages.study_config import record_config
from modelling.stages.train import build_training, refuse_other_image_size

log = logging.getLogger(__name__)

#: Stages of DESIGN.md's data flow that do not exist yet, with the issue that builds each.
PENDING: dict[str, str] = {}

class PendingStagesError(RuntimeError):
    """The main job ran every stage that exists, but some stages are not built yet."""


#: The stages whose files every chapter of the manuscript reads; the rest it reads where they ran.
REPORT_STAGES = ("cohort", "train")


def require_reportable(bundle: Bundle) -> None:
    """Refuse, in words and before anything is rendered, a bundle the manuscript cannot be rendered from: a
    stage that did not complete (:class:`data_schema.bundle.UnfinishedStageError`; the manuscript would print
    what it left half-written) or a stage of :data:`REPORT_STAGES` missing (:class:`ReportStagesError`)."""
    bundle.require_finished([rel for rel, rec in bundle.files.items() if rec.stage != "report"])
    missing = [s for s in REPORT_STAGES if s not in bundle.stages]
    if missing:
        raise ReportStagesError(f"{bundle.root}: the manuscript needs the stage(s) {', '.join(missing)}, which have not "
                                f"run; run `gvr reproduce {bundle.root}` first")


class ReportStagesError(ValueError):
    """A bundle without the stages the manuscript reads."""


def build_report(root: str | Path, *, force: bool = False) -> Bundle:
    """Render the manuscript (reports/*.py) into ``<bundle>/report/*.html`` as the stage "report".

    Its inputs are every file the other stages recorded, so any change to the bundle re-renders it; a bundle
    :func:`require_reportable` refuses is refused before anything is rendered.
    """
    from modelling.stages.report import report_scripts, write_report

    bundle = Bundle(root, create=False)
    require_reportable(bundle)
    inputs = sorted(rel for rel, rec in bundle.files.items() if rec.stage != "report")
    scripts = report_scripts()
    key = {"scripts": {p.name: sha256_file(p) for p in scripts}}  # editing a chapter re-renders
    bundle.run_stage("report", lambda st: write_report(st, scripts=scripts), config=key, inputs=inputs, force=force)
    return bundle


def reproduce(config: StudyConfig, out: str | Path, *, workers: int | None = None) -> Bundle:
    """Build the study bundle at `out` from `config`.

    Raises
    ------
    PendingStagesError
        After the existing stages ran, when some stages of the study are not built yet.
    ConfigError
        Before anything is written, when real data were ingested at another image size.
    ForeignFolderError
        Before anything is written, when `out` holds other files and no manifest.
    """
    refuse_foreign_folder(out)
    bundle = Bundle(out)
    real = bundle.origin == "real"
    if real and "cohort" not in bundle.stages:
        raise PendingStagesError(f"{bundle.root} holds real data but no complete cohort: run `gvr cohort ingest "
                                 f"... --bundle {bundle.root}` first (the phantom is never written into it)")
    if real:
        refuse_other_image_size(bundle, config)
    record_config(bundle, config)
    if real:
        log.info("%s: real data from `gvr cohort ingest`; its cohort is kept", bundle.root)
    else:
        build_cohort(config, bundle.root, workers=workers)
    build_training(config, bundle.root)
    build_explanations(config, bundle.root)
    build_fidelity(config, bundle.root)
    build_baselines(config, bundle.root)
    if config.image_model.run:
        build_image_model(config, bundle.root)
        build_own_image_rationales(config, bundle.root)
        build_image_fidelity(config, bundle.root)
    stale = stale_assessments(bundle) if real else None
    if stale is not None:
        raise PendingStagesError(
            f"built the models, GVRs and baselines of the real data in {bundle.root}, but {stale}: the readers "
            f"must read the GVRs the bundle holds now:\n  gvr readers packet {bundle.root} --out packet/ --key "
            "key.csv\n  gvr readers serve packet/ --reader A --round 1   (each reader, each round)\n"
            f"  gvr readers unblind packet/ packet/responses/*.csv --key key.csv --bundle {bundle.root}\n"
            f"  gvr reproduce {bundle.root}   (again: the analysis and the manuscript)")
    if real and "tables/reader_assessments.parquet" not in bundle.files:
        raise PendingStagesError(
            f"built the models, GVRs and baselines of the real data in {bundle.root}; the reader study needs "
            f"human readers (simulated readers need the phantom's masks):\n  gvr readers packet {bundle.root} "
            "--out packet/ --key key.csv\n  gvr readers serve packet/ --reader A --round 1   (each reader, each round)\n"
            f"  gvr readers unblind packet/ packet/responses/*.csv --key key.csv --bundle {bundle.root}\n"
            f"  gvr reproduce {bundle.root}   (again: the analysis and the manuscript)")
    if not real:
        build_simulated_readers(config, bundle.root)
        if config.shortcuts.run:
            build_shortcuts(config, bundle.root)
    analyse_bundle(bundle.root)
    build_report(bundle.root)
    if PENDING:
        lines = "\n".join(f"  - {name}: {where}" for name, where in PENDING.items())
        raise PendingStagesError(
            f"built the stages that exist into {bundle.root}; these are not built yet:\n{lines}"
        )
    return bundle
