"""Regenerate the paper's tables and figures from a study bundle, into the bundle.

:func:`analyse_bundle` reads whatever tables the bundle has and writes, through one bundle stage
named ``"analyse"``, Table 1 (from patients, radiographs, splits and pairing), Figure 2 (from
predictions) and Table 2 with its R script (from reader_assessments). What cannot be made yet is
listed with the reason instead.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from data_schema.bundle import Bundle, safe_relpath
from data_schema.registry import get_spec

__all__ = ["AnalysisOutputs", "analyse_bundle", "STAGE"]

log = logging.getLogger(__name__)

STAGE = "analyse"
_TABLE1_INPUTS = ("patients", "radiographs", "splits", "pairing")


@dataclass(frozen=True)
class AnalysisOutputs:
    """What :func:`analyse_bundle` wrote and what it could not make.

    Attributes
    ----------
    written : tuple of str
        Paths written, relative to the bundle root, in the order written.
    skipped : tuple of (str, str)
        ``(item, reason)`` for each output not made, e.g. ``("figure2", "no predictions table yet")``.
    ran : bool
        False when the stage was already current (same tables, same options) and nothing was
        rewritten; ``written`` and ``skipped`` then describe the run that made the files.
    """

    written: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    ran: bool = True

    def to_frame(self) -> pd.DataFrame:
        """One row per output: ``item`` (path or name), ``status`` (written/skipped), ``reason``."""
        rows = [{"item": p, "status": "written", "reason": ""} for p in self.written]
        rows += [{"item": i, "status": "skipped", "reason": r} for i, r in self.skipped]
        return pd.DataFrame(rows, columns=["item", "status", "reason"])


def _has(bundle: Bundle, table: str) -> bool:
    return get_spec(table).path in bundle.files


def _csv(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    return frame.to_csv(index=index, lineterminator="\n").encode()


def _feature_tests_available() -> str | None:
    """None when analysis.mixed_models offers what Table 2 needs, else the reason it does not."""
    try:
        from analysis import mixed_models
    except ImportError as exc:  # R, rpy2 or pymer4 missing
        return f"analysis.mixed_models cannot be imported ({exc})"
    missing = [n for n in ("feature_tests", "write_r_script") if not hasattr(mixed_models, n)]
    return f"analysis.mixed_models has no {', '.join(missing)} yet" if missing else None


class StaleAssessmentsError(ValueError):
    """The reader assessments are of GVRs the bundle no longer holds (made again after they were read)."""


def stale_assessments(bundle: Bundle, assessments=None) -> str | None:
    """Why the bundle's reader assessments no longer describe its GVRs, or None when they do (or there are none).

    `assessments`: the bundle's ``reader_assessments`` table when the caller has read it already.

    Stale when the stage that wrote them has inputs written again since (the simulated readers record the GVR
    index; human readers unblinded since 2026-12-03 do too), or when GVRs the readers assessed are not in
    the GVR index (older unblindings, and a cohort ingested again).
    """
    rel = "tables/reader_assessments.parquet"
    if rel not in bundle.files:
        return None
    writer = bundle.record(rel).stage
    changed = bundle.changed_inputs(writer)
    if changed:
        now = changed[0][1]
        return (f"{rel} was written by stage {writer!r} before {changed[0][0]} was "
                + ("removed" if now is None else f"written again by stage {now!r}"))
    if "tables/gvr_index.parquet" in bundle.files:
        read = set((bundle.read_table("reader_assessments") if assessments is None else assessments)["gvr_id"])
        gone = sorted(read - set(bundle.read_table("gvr_index")["gvr_id"]))
        if gone:
            return (f"{len(gone)} of the {len(read)} GVRs assessed in {rel} are not in tables/gvr_index.parquet "
                    f"(e.g. {gone[0]}): they were made again after they were read")
    return None


def analyse_bundle(
    root: str | Path,
    *,
    out: str = "analysis",
    threshold: float = 100.0,
    mixed_models: bool = True,
    model_id: str | None = None,
    force: bool = False,
) -> AnalysisOutputs:
    """Write Table 1, Figure 2 and Table 2 of whatever the bundle holds into ``<root>/<out>/``.

    Parameters
    ----------
    root : path-like
        The study bundle.
    out : str, default "analysis"
        Folder inside the bundle for the outputs.
    threshold : float, default 100.0
        BNP cutoff in ng/L (Table 1's count below it; Figure 2's cases at or above it).
    mixed_models : bool, default True
        Fit Table 2's mixed-effects models (needs R with lme4); with False, or when
        :mod:`analysis.mixed_models` is unavailable, Table 2 has no P values (listed as skipped).
    model_id : str, optional
        Predictor of Figure 2; default as :func:`analysis.figure2.figure2`.
    force : bool, default False
        Rewrite everything even when the stage is current.

    Returns
    -------
    AnalysisOutputs
        ``written`` (bundle-relative paths) and ``skipped`` (item, reason).

    Raises
    ------
    data_schema.bundle.UnfinishedStageError
        If a table it would read was written by a stage that did not complete, before anything is written.
    StaleAssessmentsError
        If the reader assessments are of GVRs the bundle no longer holds (:func:`stale_assessments`), before
        anything is written.
    data_schema.bundle.BundleError
        If a table's file no longer matches the manifest (read with hash checks).
    data_schema.validate.TableValidationError
        If a table does not match its schema.

    Notes
    -----
    Outputs, all under ``out``: ``table1.csv``/``.html`` (display) with ``table1_values.csv`` and
    ``table1_tests.csv`` (tidy, unrounded); ``figure2.png``/``.svg`` with ``figure2_auc.csv`` and
    ``figure2_alt.txt``; ``table2.csv``/``.html`` with ``table2_counts.csv``, ``table2_pooled.csv``,
    ``table2_intra_kappa.csv``, ``table2_inter_kappa.csv``, ``table2_mixed.csv`` and the plain R
    refit ``r/table2_models.R`` with its data ``r/table2_models.csv``. The stage ``"analyse"``
    records the config (``out``, ``threshold``, ``mixed_models``, ``model_id``) and the hashes of the
    tables read; called again with the same tables and options it rewrites nothing (``ran`` is False)
    unless ``force``. ``analysis_outputs.json`` in ``out`` lists what was written and skipped.

    Examples
    --------
    >>> import tempfile
    >>> from data_schema import Bundle
    >>> root = tempfile.mkdtemp()
    >>> with Bundle(root).stage("config", config={}) as stage:  # a bundle with nothing analysable yet
    ...     pass
    >>> outputs = analyse_bundle(root)
    >>> outputs.written, outputs.skipped[0]
    ((), ('table1', 'no patients, radiographs, splits, pairing table(s) yet'))
    """
    from analysis.figure2 import figure2, figure_bytes
    from analysis.table1 import table1
    from analysis.table2 import table2

    out = safe_relpath(out)
    bundle = Bundle(root, create=False)
    # a stopped stage's tables would give, say, a Table 1 of part of the cohort
    bundle.require_finished([get_spec(n).path for n in (*_TABLE1_INPUTS, "predictions", "reader_assessments")])
    assessments = (bundle.read_table("reader_assessments")
                   if "tables/reader_assessments.parquet" in bundle.files else None)
    stale = stale_assessments(bundle, assessments)
    if stale is not None:  # Table 2 would count answers about pictures the bundle no longer holds
        human = bundle.record("tables/reader_assessments.parquet").stage != "readers"
        raise StaleAssessmentsError(
            f"{bundle.root}: {stale}; Table 2 would count answers about other pictures. "
            + (f"Draw a new packet for the readers (`gvr readers packet {bundle.root} --out ...`), then unblind "
               "their answers into the bundle" if human else
               f"Run the simulated readers again (`gvr readers simulate {bundle.root}`, or `gvr reproduce "
               f"{bundle.root}`)") + "; nothing was written")
    written: list[str] = []
    skipped: list[tuple[str, str]] = []
    present = {name: _has(bundle, name) for name in (*_TABLE1_INPUTS, "predictions", "reader_assessments")}
    inputs = [get_spec(name).path for name, ok in present.items() if ok]
    # version 2: table2_mixed.csv keeps where the regime separates a feature, for the P value the notes print
    config: dict[str, Any] = {"out": out, "threshold": float(threshold), "mixed_models": bool(mixed_models),
                              "model_id": model_id, "version": 2}

    record = f"{out}/analysis_outputs.json"
    if not force and bundle.is_current(STAGE, config=config, inputs=inputs):
        done = json.loads(bundle.verify_file(record).read_text())
        logging.getLogger("gvr.progress").info("stage %s: up to date, skipped", STAGE)
        return AnalysisOutputs(written=tuple(done["written"]),
                               skipped=tuple((item, reason) for item, reason in done["skipped"]), ran=False)

    with bundle.stage(STAGE, config=config, inputs=inputs) as stage:
        def put(name: str, data: bytes | str) -> None:
            rel = f"{out}/{name}"
            stage.write_bytes(rel, data.encode() if isinstance(data, str) else data)
            written.append(rel)

        # Table 1
        lacking = [n for n in _TABLE1_INPUTS if not present[n]]
        if lacking:
            skipped.append(("table1", f"no {', '.join(lacking)} table(s) yet"))
        else:
            t1 = table1(*(bundle.read_table(n) for n in _TABLE1_INPUTS), threshold=threshold)
            put("table1.csv", t1.to_csv())
            put("table1.html", t1.to_html())
            put("table1_values.csv", _csv(t1.values))
            put("table1_tests.csv", _csv(t1.tests))

        # Figure 2
        if not present["predictions"]:
            skipped.append(("figure2", "no predictions table yet"))
        else:
            predictions = bundle.read_table("predictions")
            try:
                f2 = figure2(predictions, model_id=model_id, threshold=threshold)
            except ValueError as exc:  # no correct-regime model, no test rows, one class only
                skipped.append(("figure2", str(exc)))
            else:
                put("figure2.png", figure_bytes(f2.figure, "png"))
                put("figure2.svg", figure_bytes(f2.figure, "svg"))
                put("figure2_auc.csv", _csv(f2.to_frame()))
                put("figure2_alt.txt", f2.alt_text + "\n")

        # Table 2
        if not present["reader_assessments"]:
            skipped.append(("table2", "no reader_assessments table yet"))
        else:
            _table2(assessments, table2, mixed_models, put, skipped)
        stage.write_json(record, {"written": written, "skipped": [list(item) for item in skipped]})
    log.info("analyse: wrote %d file(s) into %s; skipped %s", len(written), bundle.root / out,
             [item for item, _ in skipped])
    return AnalysisOutputs(written=tuple(written), skipped=tuple(skipped))


def _table2(assessments: pd.DataFrame, table2, mixed_models: bool, put, skipped: list) -> None:
    reason = _feature_tests_available()
    fit = mixed_models and reason is None
    if not mixed_models:
        skipped.append(("table2_mixed", "mixed_models=False"))
    elif reason is not None:
        skipped.append(("table2_mixed", reason))
    t2 = table2(assessments, mixed_models=fit)
    put("table2.csv", t2.to_csv())
    put("table2.html", t2.to_html())
    put("table2_counts.csv", _csv(t2.counts))
    put("table2_pooled.csv", _csv(t2.pooled))
    put("table2_intra_kappa.csv", _csv(t2.intra))
    put("table2_inter_kappa.csv", _csv(t2.inter))
    if fit:
        put("table2_mixed.csv", _csv(t2.mixed))
    if reason is not None:
        skipped.append(("table2_r_script", reason))
        return
    from analysis.mixed_models import formula_for, write_r_script
    from analysis.mixed_models.table2_tests import constant_features

    # a feature every reader answered the same way has no log-odds to fit: R would stop at it
    constant = sorted(constant_features(assessments))
    varies = ~assessments["feature"].isin(constant)
    if constant:
        skipped.append((f"table2_r_script: {', '.join(constant)}",
                        "answered the same way in every assessment, so no log-odds to estimate; left out of the script"))
    if not varies.any():
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = write_r_script(assessments[varies], tmp, formula=formula_for(assessments))
        put(f"r/{files.script.name}", files.script.read_bytes())
        put(f"r/{files.data.name}", files.data.read_bytes())
