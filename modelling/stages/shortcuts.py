"""The shortcut benchmark: does an explanation catch a model that learned a shortcut, and does the audit?

For each seed, phantom cohorts are drawn that differ only in the shortcut: a lead marker that a chosen
share of the positive radiographs (reported BNP at or above the threshold) carries, the strength, and a
fixed small share of the negatives (``cohort.shortcut_positive_share`` / ``shortcut_negative_share``;
the marker has its own random stream, so every other draw is the same, and a larger strength marks a
superset of the radiographs a smaller one marks). The decoder and encoder are trained once per seed,
on the cohort of the largest strength, whose unlabelled radiographs carry the marker as often as its
labelled ones, so the generative model can represent it. At every strength the predictors are fitted
on those networks' codes and explained with GVRs and every baseline; the fidelity stage measures each
model's reliance on the shortcut by intervention (the marker removed, same noise, encoded and
predicted again), and the baselines stage writes the faithfulness shares and the audit.

As ``gvr benchmark shortcuts --out DIR``, the layout of DIR is below. As a stage of ``gvr reproduce``
(``shortcuts.run`` in the config), the seeds' bundles go to ``work/shortcuts/`` of the study bundle and
the results to ``tables/shortcut_shares.parquet``, ``tables/shortcut_models.parquet`` and
``shortcuts/`` (summary and figure), for the manuscript's "Beyond the paper".

Layout of the output directory::

    seed-<seed>/strength-<percent>/   a study bundle per seed and strength (resumable: a rerun
                                      skips every stage that is current)
    shares.parquet                    (shortcut_shares) per seed, strength, model and method: mean share of the
                                      explanation on the shortcut mask (all explained radiographs,
                                      and those carrying the marker), on the disease masks, elsewhere
    models.parquet                    (shortcut_models) per seed, strength and model: the measured reliance on the
                                      shortcut and on every feature, the truth and the audit's decision
    summary.json                      rank correlations per method, the audit's and each method's
                                      confusion against the truth, timings
    shortcuts.png                     share on the shortcut against strength, one line per method
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data_schema import Bundle
from data_schema.io import atomic_write_bytes, atomic_write_text
from analysis.shortcuts import figure_png
from modelling.config import ShortcutsConfig, StudyConfig, config_from_dict, config_to_dict
from modelling.explain.audit import FLAGGED, THRESHOLD, UNDECIDED, mask_share, reliance_verdict
from modelling.progress import format_duration, note

#: The issue's strengths (FastDiME's 100, 75 and 50 %, and none).
STRENGTHS = (0.0, 0.5, 0.75, 1.0)
#: Share of negatives that carry the marker at every strength.
NEGATIVE_SHARE = 0.05


def strength_config(config: StudyConfig, strength: float, negative_share: float, seed: int) -> StudyConfig:
    """`config` with the shortcut at `strength` and the given seed."""
    data = config_to_dict(config)
    data["seed"] = int(seed)
    data["cohort"]["shortcut_positive_share"] = float(strength)
    data["cohort"]["shortcut_negative_share"] = float(negative_share)
    return config_from_dict(data)


def bundle_dir(out: Path, seed: int, strength: float) -> Path:
    return Path(out) / f"seed-{seed}" / f"strength-{round(100 * strength):03d}"


def build_strength(config: StudyConfig, root: Path, networks: Bundle | None, *, workers: int | None = None) -> Bundle:
    """One seed's cohort at one strength, its predictors (on `networks`, or trained here when None), GVRs,
    fidelity and baselines; every stage is skipped when current."""
    from modelling.stages.baselines import build_baselines
    from modelling.stages.cohort import build_cohort
    from modelling.stages.explain import build_explanations
    from modelling.stages.fidelity import build_fidelity
    from modelling.stages.train import build_predictors, build_training

    build_cohort(config, root, workers=workers)
    if networks is None:
        build_training(config, root)
    else:
        build_predictors(config, root, networks)
    build_explanations(config, root)
    build_fidelity(config, root)
    build_baselines(config, root)
    return Bundle(root, create=False)


def _share_rows(bundle: Bundle) -> list[dict]:
    table = bundle.read_table("faithfulness")
    render = bundle.read_table("phantom_render").set_index("image_id")["shortcut"]
    gvrs = bundle.read_table("gvr_index").set_index("gvr_id")["image_id"]
    table = table.assign(carrier=render.loc[gvrs.loc[table["gvr_id"]]].to_numpy() > 0.5)
    rows = []
    for (model_id, method), g in table.groupby(["model_id", "method"], sort=True):
        shares = g[[c for c in g if c.startswith("share_")]].mean()
        carriers = g[g["carrier"]]
        rows.append({
            "model_id": model_id, "regime": g["regime"].iloc[0], "method": method, "explained": int(len(g)),
            "carriers": int(len(carriers)),
            "share_shortcut": float(shares["share_shortcut"]),
            "share_shortcut_carriers": float(carriers["share_shortcut"].mean()) if len(carriers) else None,
            "share_disease": float(shares["share_disease"]),
            "share_elsewhere": (None if shares[["share_shortcut", "share_disease"]].isna().any()  # all-zero maps
                                else float(max(0.0, 1.0 - shares["share_shortcut"] - shares["share_disease"]))),
            "non_disease_share": mask_share(shares.to_dict()),
        })
    return rows


def _model_rows(bundle: Bundle) -> list[dict]:
    reliance = bundle.read_table("model_reliance")
    audit = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    aucs = json.loads(bundle.verify_file("train/summary.json").read_text())["auc"]
    positioning = json.loads(bundle.verify_file("fidelity/summary.json").read_text()).get("positioning") or {}
    rows = []
    for model_id, g in reliance.groupby("model_id", sort=True):
        drops = dict(zip(g["feature"], g["mean_drop"]))
        truth = reliance_verdict(drops)
        moved = (positioning.get(model_id) or {}).get("mean_absolute_fall")
        with_positioning = reliance_verdict(drops, also=moved) if moved is not None else None
        a = audit[model_id]
        rows.append({
            "model_id": model_id, "regime": g["regime"].iloc[0],
            # the correct model's test split; the overfitted model's withheld quarter of its own data
            "held_out_auc": aucs.get(f"{model_id}/{'test' if g['regime'].iloc[0] == 'correct' else 'validation'}",
                                     {}).get("auc"),
            "shortcut_reliance": float(drops.get("shortcut", 0.0)),
            **{f"drop_{f}": float(v) for f, v in drops.items()},
            "reliance_share": truth["share"], "truly_flagged": truth["flagged"],
            # not the truth: the same share with patient positioning counted as a non-disease reliance
            "positioning_response": moved,
            "reliance_share_with_positioning": with_positioning["share"] if with_positioning else None,
            "flagged_with_positioning": bool(with_positioning and with_positioning["flagged"]),
            "audit_decision": a["decision"], "audit_basis": a["basis"],
            "audit_non_disease_share": a.get("non_disease_share"),
            "audit_flagged": a["decision"] == FLAGGED,
            "audit_region_share": a.get("region_share"),
            "audit_outside_share": (a.get("region_effects") or {}).get("outside_share"),
        })
    return rows


def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def confusion(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """True and false positives and negatives of flags against the truth.

    >>> confusion(np.array([True, True, False, False]), np.array([True, False, False, True]))
    {'tp': 1, 'fp': 1, 'tn': 1, 'fn': 1, 'n': 4}
    """
    p, t = np.asarray(predicted, bool), np.asarray(truth, bool)
    return {"tp": int((p & t).sum()), "fp": int((p & ~t).sum()), "tn": int((~p & ~t).sum()),
            "fn": int((~p & t).sum()), "n": int(len(p))}


def summarise(shares: pd.DataFrame, models: pd.DataFrame) -> dict:
    """Per method, the Spearman correlation of its mass on the shortcut with the measured reliance over
    all models and seeds, and the confusion against the truth of the share-by-area rule (N > threshold, which
    the audit no longer decides by) applied to its mean shares; the audit's confusion."""
    from scipy.stats import spearmanr

    merged = shares.merge(models[["seed", "strength", "model_id", "shortcut_reliance", "truly_flagged"]],
                          on=["seed", "strength", "model_id"])
    by_method = {}
    for method, g in merged.groupby("method", sort=True):
        rho = (_finite(spearmanr(g["share_shortcut"], g["shortcut_reliance"]).statistic)
               if g["share_shortcut"].nunique() > 1 and g["shortcut_reliance"].nunique() > 1 else None)
        share = g["non_disease_share"].to_numpy(float)
        defined = np.isfinite(share)  # a map with no mass (Grad-CAM on a tiny network) decides nothing: not a pass
        by_method[method] = {"spearman_shortcut_mass_vs_reliance": rho, "models": int(len(g)),
                             "area_rule": confusion(share[defined] > THRESHOLD,
                                                    g["truly_flagged"].to_numpy(bool)[defined])
                             | {"undefined": int((~defined).sum())}}
    # an undecided model is neither flagged nor passed: left out of the confusions, and a requirement's miss
    decided = (models["audit_decision"] != UNDECIDED if "audit_decision" in models
               else pd.Series(True, index=models.index))
    requirements = {}
    for strength, want in ((0.0, False), (0.75, True), (1.0, True)):
        at = np.isclose(models["strength"], strength) & (models["regime"] == "correct")
        rows = models[at]
        if len(rows):
            requirements[f"correct models at {strength:.0%}: {'flagged' if want else 'passed'}"] = {
                "met": bool(decided[at].all() and (rows["audit_flagged"] == want).all()),
                "flagged": int(rows["audit_flagged"].sum()), "undecided": int((~decided[at]).sum()),
                "models": int(len(rows))}
    counted = ((models["positioning_response"].notna() & decided).to_numpy() if "positioning_response" in models
               else None)
    with_positioning = None if counted is None or not counted.any() else {
        "models": int(counted.sum()),
        "truly_flagged": int(models["truly_flagged"][counted].sum()),
        "flagged_with_positioning": int(models["flagged_with_positioning"][counted].sum()),
        "audit": confusion(models["audit_flagged"].to_numpy(bool)[counted],
                           models["flagged_with_positioning"].to_numpy(bool)[counted]),
    }
    truth = models["truly_flagged"].to_numpy(bool)
    evidence = {}
    for name, column in (("area_share", "audit_non_disease_share"), ("region_share", "audit_region_share"),
                         ("outside_share", "audit_outside_share")):
        values = models[column].to_numpy(float) if column in models else np.full(len(models), np.nan)
        reliance = models["reliance_share"].to_numpy(float) if "reliance_share" in models else np.full(len(models), np.nan)
        ok = np.isfinite(values) & np.isfinite(reliance)
        evidence[name] = {
            "spearman_vs_reliance_share": (
                _finite(spearmanr(values[ok], reliance[ok]).statistic)
                if ok.sum() > 2 and len(np.unique(values[ok])) > 1 and len(np.unique(reliance[ok])) > 1 else None),
            "models": int(ok.sum()),
            "at_threshold": confusion(values[ok] > THRESHOLD, truth[ok])}
    return {
        "threshold": THRESHOLD,
        "evidence": evidence,
        "decides": "outside_share",  # which of the evidence the audit's decision is (N where O is undefined)
        # models the audit decided by N because O was not measured on them (no masks, or no region response)
        "decided_by_area_share": int((decided & ~np.isfinite(models["audit_outside_share"].to_numpy(float)
                                                             if "audit_outside_share" in models
                                                             else np.full(len(models), np.nan))).sum()),
        "with_positioning": with_positioning,
        "audit": confusion(models["audit_flagged"][decided].to_numpy(bool), models["truly_flagged"][decided].to_numpy(bool)),
        "audit_agrees": (float((models["audit_flagged"] == models["truly_flagged"])[decided].mean())
                         if decided.any() else None),
        "undecided": int((~decided).sum()),
        "requirements": requirements,
        "methods": by_method,
    }


def measure(config: StudyConfig, work, settings: ShortcutsConfig, *, workers: int | None = None
            ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Build (or resume) every seed's bundles under `work` (`settings`: seeds, strengths, the negatives'
    share); return the summary and both tables."""
    strengths, seeds, negative_share = sorted(set(settings.strengths)), settings.seeds, settings.negative_share
    share_rows, model_rows, timings = [], [], {}
    started = time.monotonic()
    for k in range(seeds):
        seed = config.seed + k
        # the networks: trained once, on the cohort of the largest strength (so they know the marker)
        networks = None
        for strength in [strengths[-1], *strengths[:-1]]:
            t0 = time.monotonic()
            note("shortcut benchmark: seed %d (%d of %d), strength %.0f%%", seed, k + 1, seeds, 100 * strength)
            cfg = strength_config(config, strength, negative_share, seed)
            bundle = build_strength(cfg, bundle_dir(work, seed, strength), networks, workers=workers)
            networks = networks or bundle
            timings[f"seed-{seed}/strength-{round(100 * strength):03d}"] = round(time.monotonic() - t0, 1)
            share_rows += [{"seed": seed, "strength": strength, **row} for row in _share_rows(bundle)]
            model_rows += [{"seed": seed, "strength": strength, **row} for row in _model_rows(bundle)]
    # a column whose values may all be undefined is still a float column
    shares = pd.DataFrame(share_rows).astype({c: float for c in (
        "strength", "share_shortcut", "share_shortcut_carriers", "share_disease", "share_elsewhere",
        "non_disease_share")})
    models = pd.DataFrame(model_rows).astype({c: float for c in (
        "strength", "held_out_auc", "reliance_share", "positioning_response", "reliance_share_with_positioning",
        "audit_non_disease_share", "audit_region_share", "audit_outside_share")})
    summary = summarise(shares, models) | {
        "strengths": strengths, "seeds": [config.seed + k for k in range(seeds)], "negative_share": negative_share,
        "profile": config.profile, "seconds_this_run": timings, "total_seconds": round(time.monotonic() - started, 1),
        "method": {
            "seconds_this_run": "wall-clock seconds of this run per seed and strength; a strength whose stages "
                                "were all current (a resumed run) takes about a second",
            "share_shortcut": "mean share of the explanation's absolute weight in the shortcut marker's mask",
            "shortcut_reliance": "mean fall in predicted log BNP over the model's GVR radiographs when the "
                                 "marker is removed (0 where it is absent)",
            "spearman": "Spearman rho over every model and seed of a method's mean shortcut share with the "
                        "model's shortcut reliance",
            "with_positioning": "not the truth: models flagged when patient positioning (the mean absolute "
                                "change in predicted log BNP when drawn again with neutral positioning) counts "
                                "as one more non-disease reliance, and the audit against that",
            "area_rule": "the share-by-area rule N applied to each method's mean shares (non-disease share > "
                         f"{THRESHOLD}; the audit decided by it until 2026-12-03) against the truth by intervention",
            "evidence": "the audit's GVR shares, the change's share by area N (area_share, reported), the "
                        "model's response to the shortened GVRs' change by region with everything outside the "
                        "disease and device masks as the non-disease region O (outside_share, which decides "
                        "since 2026-12-04) and the same response with the non-disease masks alone E "
                        "(region_share, reported; it decided from 2026-12-03), each against the truth's "
                        f"reliance share: Spearman rho over the models, and the flags that share > {THRESHOLD} "
                        "would give",
            "decides": "the key in evidence of the share the audit decides by",
        },
    }
    note("shortcut benchmark: measured in %s", format_duration(time.monotonic() - started))
    return summary, shares, models


def run_benchmark(config: StudyConfig, out, *, strengths=STRENGTHS, seeds: int = 3,
                  negative_share: float = NEGATIVE_SHARE, workers: int | None = None) -> dict:
    """Run (or resume) the benchmark into the directory `out`; return its summary (also ``out/summary.json``)."""
    import io

    from data_schema.registry import get_spec

    # checked (ConfigError, a ValueError) before the directory is made
    settings = ShortcutsConfig(run=True, seeds=seeds, strengths=tuple(float(v) for v in strengths),
                               negative_share=float(negative_share))
    out = Path(out)
    if (out / "manifest.json").is_file():  # a study bundle (real data, perhaps): never write beside its files
        raise ValueError(f"{out}: a study bundle; give the benchmark a directory of its own (its seeds' bundles "
                         "and tables go there), or run it into a phantom study with `gvr reproduce STUDY --shortcuts`")
    out.mkdir(parents=True, exist_ok=True)
    summary, shares, models = measure(config, out, settings, workers=workers)
    for name, table in (("shares", shares), ("models", models)):
        get_spec(f"shortcut_{name}").schema().validate(table)
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        atomic_write_bytes(out / f"{name}.parquet", buffer.getvalue())
    atomic_write_bytes(out / "shortcuts.png", figure_png(shares, models))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    return summary


STAGE = "shortcuts"
#: Raised when the tables gain a column or change meaning (2: audit_region_share; 3: the region response
#: decides, on shortened GVRs; 4: audit_outside_share; 5: O decides), so that a study bundle's tables are rebuilt.
TABLES_VERSION = 5
#: Where the stage keeps its seeds' bundles inside the study bundle (resumable work, not results).
WORK = "work/shortcuts"


def write_shortcuts(stage, config: StudyConfig) -> dict:
    summary, shares, models = measure(config, stage.bundle.root / WORK, config.shortcuts)
    stage.write_table("shortcut_shares", shares)
    stage.write_table("shortcut_models", models)
    stage.write_bytes("shortcuts/shortcuts.png", figure_png(shares, models))
    stage.write_json("shortcuts/summary.json", summary)
    return summary


def build_shortcuts(config: StudyConfig, out, *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Run the benchmark as a stage of the study bundle at `out` (phantom only; skipped when current)."""
    bundle = Bundle(out, create=False)
    if bundle.origin == "real":
        raise ValueError(f"{bundle.root}: the shortcut benchmark draws phantom cohorts; it has no place in a "
                         "bundle of real data (run `gvr benchmark shortcuts --out DIR` instead)")
    key = {"study": config_to_dict(config)}
    key["study"].pop("readers", None)  # the reader study does not change the benchmark
    key["tables_version"] = TABLES_VERSION
    result: dict = {}
    bundle.run_stage(STAGE, lambda st: result.update(write_shortcuts(st, config)), config=key, seed=config.seed,
                     force=force)
    return bundle, result or None


def load_result(out) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The summary and both tables of a finished benchmark directory."""
    out = Path(out)
    missing = [n for n in ("summary.json", "shares.parquet", "models.parquet") if not (out / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: no finished shortcut benchmark ({', '.join(missing)} missing); "
                                f"run `gvr benchmark shortcuts --out {out}`")
    return (json.loads((out / "summary.json").read_text()), pd.read_parquet(out / "shares.parquet"),
            pd.read_parquet(out / "models.parquet"))


__all__ = ["run_benchmark", "build_shortcuts", "measure", "load_result", "STRENGTHS", "NEGATIVE_SHARE"]
