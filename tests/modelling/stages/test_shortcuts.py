"""The shortcut benchmark at tiny size: one generative model per seed, predictors per strength, the audit
scored against the reliance measured by intervention."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data_schema import Bundle, validate_bundle
from modelling.config import load_config
from modelling.stages.shortcuts import bundle_dir, confusion, load_result, run_benchmark, summarise


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    out = tmp_path_factory.mktemp("shortcuts") / "bench"
    cfg = load_config("tiny")
    summary = run_benchmark(cfg, out, strengths=(0.0, 1.0), seeds=1, negative_share=0.05, workers=1)
    return cfg, out, summary


def test_strengths_share_one_generative_model_and_differ_only_in_the_marker(benchmark):
    cfg, out, _ = benchmark
    none, full = (Bundle(bundle_dir(out, cfg.seed, s), create=False) for s in (0.0, 1.0))
    for b in (none, full):
        assert validate_bundle(b.root) == []
    for name in ("decoder", "encoder"):
        assert none.record(f"checkpoints/{name}.pt").sha256 == full.record(f"checkpoints/{name}.pt").sha256
    assert "networks_from" in json.loads(none.verify_file("train/summary.json").read_text())
    a, b = none.read_table("phantom_render"), full.read_table("phantom_render")
    assert a.drop(columns="shortcut").equals(b.drop(columns="shortcut"))
    positive = full.read_table("phantom_truth")["image_id"].isin(full.read_table("pairing").query(
        f"bnp_ng_l >= {cfg.cohort.bnp_threshold_ng_l}")["image_id"])
    labelled = b["image_id"].isin(full.read_table("pairing")["image_id"])
    assert (b.loc[labelled & positive.to_numpy(), "shortcut"] == 1).all()  # every positive at 100 %
    assert a.loc[labelled & positive.to_numpy(), "shortcut"].sum() == 0  # none at 0 %
    assert 0 < a["shortcut"].mean() < 0.2  # the negatives' small fixed share
    assert (b["shortcut"] >= a["shortcut"]).all()  # a larger strength marks a superset


def test_tables_summary_and_figure(benchmark):
    cfg, out, summary = benchmark
    saved, shares, models = load_result(out)
    assert saved["audit"] == summary["audit"]
    assert set(shares["strength"]) == {0.0, 1.0} and set(shares["method"]) >= {"gvr", "occlusion", "lime"}
    assert set(models["model_id"]) == {"mlp-correct", "mlp-overfitted"}
    assert models["audit_decision"].isin(["flagged", "passed", "undecided"]).all()
    # an undecided model (at tiny size, GVRs that move nothing in the masks) is left out of the confusion
    decided = models["audit_decision"] != "undecided"
    assert len(models) == 4 and summary["audit"]["n"] == int(decided.sum()) >= 1
    assert summary["undecided"] == int((~decided).sum())
    assert summary["audit_agrees"] == pytest.approx((models["audit_flagged"] == models["truly_flagged"])[decided].mean())
    at_zero = shares[shares["strength"] == 0.0]
    unmarked = at_zero.loc[at_zero["carriers"] == 0, "share_shortcut"]
    assert (unmarked.dropna() == 0).all() and unmarked.notna().any()  # no marker, no mass on it (NaN: all-zero maps)
    both = shares[["share_shortcut", "share_disease", "share_elsewhere"]]
    assert ((both >= 0) | both.isna()).all().all()
    assert (out / "shortcuts.png").read_bytes()[:4] == b"\x89PNG"
    assert set(summary["requirements"]) == {"correct models at 0%: passed", "correct models at 100%: flagged"}
    # positioning counted as one more non-disease reliance can only raise the share (reported, not the truth)
    assert models["positioning_response"].notna().all() and (models["positioning_response"] >= 0).all()
    assert (models["reliance_share_with_positioning"] >= models["reliance_share"] - 1e-12).all()
    assert (models["flagged_with_positioning"] >= models["truly_flagged"]).all()
    counted = summary["with_positioning"]  # the decided models, as in the audit's confusion
    assert counted["models"] == int(decided.sum())
    assert counted["flagged_with_positioning"] == int(models["flagged_with_positioning"][decided].sum())


def test_a_rerun_resumes_without_redoing_a_stage(benchmark):
    cfg, out, summary = benchmark
    bundle = Bundle(bundle_dir(out, cfg.seed, 1.0), create=False)
    before = bundle.record("checkpoints/decoder.pt").sha256, json.loads((bundle.root / "manifest.json").read_text())
    again = run_benchmark(cfg, out, strengths=(0.0, 1.0), seeds=1, negative_share=0.05, workers=1)
    after = json.loads((bundle.root / "manifest.json").read_text())
    assert after["stages"] == before[1]["stages"]
    assert again["audit"] == summary["audit"]


@pytest.mark.parametrize("kwargs, message", [
    ({"strengths": (0.0, 1.5)}, "shortcuts.strengths: must list shares from 0 to 1"),
    ({"strengths": ()}, "shortcuts.strengths: must list shares from 0 to 1"),
    ({"seeds": 0}, "shortcuts.seeds: must be at least 1"),
    ({"negative_share": 0.9, "strengths": (0.0, 0.5)}, "shortcuts.negative_share: must lie in 0-1 and below"),
    ({"negative_share": 1.5, "strengths": (0.0,)}, "shortcuts.negative_share: must lie in 0-1 and below"),
])
def test_bad_arguments_are_refused_before_anything_is_built(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_benchmark(load_config("tiny"), tmp_path / "b", **kwargs)
    assert not (tmp_path / "b").exists()


def test_a_study_bundle_is_never_used_as_the_benchmarks_directory(tiny_trained, tmp_path):
    from tests.conftest import copy_bundle

    root = copy_bundle(tiny_trained, tmp_path / "study")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(ValueError, match="a study bundle; give the benchmark a directory of its own"):
        run_benchmark(load_config("tiny"), root, strengths=(0.0, 1.0), seeds=1)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_missing_result_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished shortcut benchmark"):
        load_result(tmp_path)


def test_summary_counts_each_method_against_the_truth():
    models = pd.DataFrame({"seed": 1, "strength": [0.0, 0.0, 1.0, 1.0], "model_id": ["a", "b", "a", "b"],
                           "regime": ["correct", "overfitted"] * 2, "shortcut_reliance": [0.0, 0.1, 1.0, 2.0],
                           "truly_flagged": [False, False, True, True],
                           "audit_flagged": [False, True, True, True]})
    shares = pd.DataFrame({"seed": 1, "strength": [0.0, 0.0, 1.0, 1.0], "model_id": ["a", "b", "a", "b"],
                           "method": "m", "share_shortcut": [0.0, 0.01, 0.2, 0.3],
                           "non_disease_share": [0.1, 0.2, 0.6, 0.7]})
    s = summarise(shares, models)
    assert s["audit"] == {"tp": 2, "fp": 1, "tn": 1, "fn": 0, "n": 4}
    assert s["decided_by_area_share"] == 4  # no region response (O) in these models: the audit fell back to N
    assert summarise(shares, models.assign(audit_outside_share=[0.1, np.nan, 0.7, 0.8]))["decided_by_area_share"] == 1
    assert s["methods"]["m"]["spearman_shortcut_mass_vs_reliance"] == pytest.approx(1.0)
    assert s["methods"]["m"]["area_rule"] == confusion(np.array([0, 0, 1, 1], bool), models["truly_flagged"]) | {
        "undefined": 0}
    # a map with no mass (NaN share: Grad-CAM on a tiny network) is neither flagged nor passed; it counted as a pass
    blank = summarise(pd.concat([shares, shares.assign(method="blank", non_disease_share=np.nan)]), models)
    assert blank["methods"]["blank"]["area_rule"] == {"tp": 0, "fp": 0, "tn": 0, "fn": 0, "n": 0, "undefined": 4}
    assert s["requirements"]["correct models at 0%: passed"]["met"]
    assert s["requirements"]["correct models at 100%: flagged"]["met"]
    assert s["with_positioning"] is None  # no positioning measured: nothing to count
    counted = summarise(shares, models.assign(positioning_response=[0.5, None, 0.4, 0.3],
                                              flagged_with_positioning=[True, False, True, True]))
    assert counted["with_positioning"] == {"models": 3, "truly_flagged": 2, "flagged_with_positioning": 3,
                                           "audit": {"tp": 2, "fp": 0, "tn": 0, "fn": 1, "n": 3}}
    assert s["evidence"]["region_share"]["models"] == 0  # no region response or truth share: nothing counted
    assert s["undecided"] == 0


def test_an_undecided_model_is_neither_passed_nor_agreeing():
    models = pd.DataFrame({"seed": 1, "strength": [0.0, 0.0, 1.0, 1.0], "model_id": ["a", "b", "a", "b"],
                           "regime": ["correct", "overfitted"] * 2, "shortcut_reliance": [0.0, 0.1, 1.0, 2.0],
                           "truly_flagged": [False, False, True, True],
                           "audit_decision": ["undecided", "passed", "flagged", "flagged"]})
    models["audit_flagged"] = models["audit_decision"] == "flagged"
    shares = pd.DataFrame({"seed": 1, "strength": 0.0, "model_id": ["a"], "method": "m", "share_shortcut": [0.0],
                           "non_disease_share": [0.1]})
    s = summarise(shares, models)
    assert s["undecided"] == 1 and s["audit"] == {"tp": 2, "fp": 0, "tn": 1, "fn": 0, "n": 3}
    assert s["audit_agrees"] == 1.0  # of the three decided
    at_zero = s["requirements"]["correct models at 0%: passed"]
    assert not at_zero["met"] and at_zero["undecided"] == 1 and at_zero["flagged"] == 0


def test_summary_scores_both_gvr_shares_against_the_truths_share():
    models = pd.DataFrame({"seed": 1, "strength": [0.0, 0.0, 1.0, 1.0], "model_id": ["a", "b", "a", "b"],
                           "regime": ["correct", "overfitted"] * 2, "shortcut_reliance": [0.0, 0.1, 1.0, 2.0],
                           "reliance_share": [0.3, 0.45, 0.6, 0.7], "truly_flagged": [False, False, True, True],
                           "audit_flagged": False, "audit_non_disease_share": [0.3, 0.2, 0.25, 0.1],
                           "audit_region_share": [0.1, None, 0.55, 0.4], "audit_outside_share": [0.2, 0.6, None, 0.7]})
    shares = pd.DataFrame({"seed": 1, "strength": 0.0, "model_id": ["a"], "method": "m", "share_shortcut": [0.0],
                           "non_disease_share": [0.1]})
    e = summarise(shares, models)["evidence"]
    assert e["area_share"]["spearman_vs_reliance_share"] == pytest.approx(-0.8)
    assert e["area_share"]["at_threshold"] == {"tp": 0, "fp": 0, "tn": 2, "fn": 2, "n": 4}
    # the model without a region response is left out, not counted as passed
    assert e["region_share"]["models"] == 3
    assert e["region_share"]["spearman_vs_reliance_share"] == pytest.approx(0.5)
    assert e["region_share"]["at_threshold"] == {"tp": 1, "fp": 0, "tn": 1, "fn": 1, "n": 3}
    # O, which the audit decides by, counted the same way over the models it was measured on
    assert summarise(shares, models)["decides"] == "outside_share"
    assert e["outside_share"]["models"] == 3 and e["outside_share"]["spearman_vs_reliance_share"] == pytest.approx(1.0)
    assert e["outside_share"]["at_threshold"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 0, "n": 3}


def test_cli_resumes_and_prints_the_audit_against_the_truth(benchmark):
    from typer.testing import CliRunner

    from modelling.cli.app import app

    cfg, out, summary = benchmark
    result = CliRunner().invoke(app, ["benchmark", "shortcuts", "--config", "tiny", "--out", str(out),
                                      "--strengths", "0,1", "--seeds", "1", "--workers", "1"])
    assert result.exit_code == 0, result.output
    a = summary["audit"]
    assert f"{a['tp']} true and {a['fp']} false positives" in result.output
    assert "correct models at 100%: flagged" in result.output and "gvr" in result.output
    # no options: the profile's own shortcuts section (tiny: one seed, strengths 0 and 1), the same benchmark
    # resumed; the options' fixed defaults ran 3 seeds x 4 strengths whatever the profile said
    before = sorted(p.name for p in out.iterdir())
    again = CliRunner().invoke(app, ["benchmark", "shortcuts", "--config", "tiny", "--out", str(out), "--workers", "1"])
    assert again.exit_code == 0, again.output
    assert "of 3" not in again.output and sorted(p.name for p in out.iterdir()) == before
    assert f"{a['tp']} true and {a['fp']} false positives" in again.output
    bad = CliRunner().invoke(app, ["benchmark", "shortcuts", "--config", "tiny", "--out", str(out / "x"),
                                   "--strengths", "0,half"])
    assert bad.exit_code == 2 and "--strengths: expected numbers" in bad.output
    assert not (out / "x").exists()
