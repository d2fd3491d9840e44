"""analyse_bundle on a tiny cohort bundle with synthetic predictions and reader assessments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.analyse import STAGE, analyse_bundle
from analysis.table1 import table1
from analysis.table2 import table2
from data_schema.bundle import Bundle
from tests.analysis.test_table2 import synthetic_assessments


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from modelling.stages.cohort import build_cohort
    from modelling.config import load_config

    root = tmp_path_factory.mktemp("bundle")
    build_cohort(load_config("tiny"), root, workers=1)
    return root


def _add_predictions_and_assessments(root):
    bundle = Bundle(root)
    splits, pairing = bundle.read_table("splits"), bundle.read_table("pairing")
    rng = np.random.default_rng(5)
    lab = (splits[splits["set"] != "unlabelled"].merge(pairing[["image_id", "bnp_ng_l"]], on="image_id")
           .sort_values("bnp_ng_l", kind="stable").reset_index(drop=True))
    roles = np.where(np.arange(len(lab)) % 2 == 0, "test", "train")  # both classes among the test rows
    pred = np.exp(np.log(lab["bnp_ng_l"].to_numpy()) * 0.5 + rng.normal(2.9, 0.4, len(lab)))
    predictions = pd.DataFrame({"image_id": lab["image_id"], "model_id": "mlp-correct", "predictor": "mlp",
                                "regime": "correct", "role": roles, "checkpoint_sha256": "b" * 64,
                                "bnp_true_ng_l": lab["bnp_ng_l"].to_numpy(), "bnp_pred_ng_l": pred})
    assert predictions.loc[predictions["role"] == "test", "bnp_true_ng_l"].lt(100).any()
    with bundle.stage("synthetic_readers", config={"seed": 7}, seed=7) as st:
        st.write_table("predictions", predictions)
        st.write_table("reader_assessments", synthetic_assessments())
    return predictions


def test_cohort_only_skips_figure2_and_table2(cohort):
    outputs = analyse_bundle(cohort, mixed_models=False)
    assert dict(outputs.skipped) == {"figure2": "no predictions table yet",
                                     "table2": "no reader_assessments table yet"}
    assert outputs.written == ("analysis/table1.csv", "analysis/table1.html", "analysis/table1_values.csv",
                               "analysis/table1_tests.csv")
    bundle = Bundle(cohort)
    for rel in outputs.written:
        bundle.verify_file(rel)  # recorded in the manifest with its hash
        assert bundle.record(rel).stage == STAGE
    expected = table1(*(bundle.read_table(n) for n in ("patients", "radiographs", "splits", "pairing")))
    assert bundle.path("analysis/table1.csv").read_text() == expected.to_csv()
    assert bundle.path("analysis/table1.html").read_text() == expected.to_html()
    assert STAGE in bundle.stages


def test_a_current_analysis_is_not_rewritten(cohort):
    first = analyse_bundle(cohort, mixed_models=False)
    bundle = Bundle(cohort)
    stamps = {rel: bundle.path(rel).stat().st_mtime_ns for rel in first.written}
    again = analyse_bundle(cohort, mixed_models=False)
    assert not again.ran
    assert (again.written, again.skipped) == (first.written, first.skipped)
    assert {rel: bundle.path(rel).stat().st_mtime_ns for rel in first.written} == stamps
    assert analyse_bundle(cohort, mixed_models=False, force=True).ran
    assert analyse_bundle(cohort, mixed_models=False, threshold=200.0).ran  # another option: rerun
    assert analyse_bundle(cohort, mixed_models=False).ran  # and back


def test_everything_with_predictions_and_assessments(cohort):
    predictions = _add_predictions_and_assessments(cohort)
    outputs = analyse_bundle(cohort, out="results", mixed_models=False)
    names = {p.split("/", 1)[1] for p in outputs.written}
    assert {"table1.csv", "table1.html", "figure2.png", "figure2.svg", "figure2_auc.csv", "figure2_alt.txt",
            "table2.csv", "table2.html", "table2_counts.csv", "table2_pooled.csv", "table2_intra_kappa.csv",
            "table2_inter_kappa.csv"} <= names
    assert all(p.startswith("results/") for p in outputs.written)
    bundle = Bundle(cohort)
    assert bundle.path("results/figure2.png").read_bytes()[:4] == b"\x89PNG"
    auc = pd.read_csv(bundle.path("results/figure2_auc.csv"))
    assert auc.loc[0, "n"] == (predictions["role"] == "test").sum()
    counts = pd.read_csv(bundle.path("results/table2_counts.csv"))
    pd.testing.assert_frame_equal(counts, table2(synthetic_assessments(), mixed_models=False).counts)
    assert ("table2_mixed", "mixed_models=False") in outputs.skipped
    frame = outputs.to_frame()
    assert set(frame["status"]) == {"written", "skipped"}


mixed_models = pytest.importorskip("analysis.mixed_models")


@pytest.mark.r
@pytest.mark.filterwarnings("ignore::UserWarning")  # lme4 convergence notes; kept in table2_mixed.csv
def test_mixed_models_and_r_script(cohort):
    if not Bundle(cohort).files.get("tables/reader_assessments.parquet"):
        _add_predictions_and_assessments(cohort)
    outputs = analyse_bundle(cohort)
    assert {"analysis/table2_mixed.csv", "analysis/r/table2_models.R", "analysis/r/table2_models.csv"} <= set(
        outputs.written)
    bundle = Bundle(cohort)
    mixed = pd.read_csv(bundle.path("analysis/table2_mixed.csv"), keep_default_na=False)
    assert list(mixed["feature"]) == ["cardiomegaly", "pleural_effusion", "airspace_opacity", "no_chf_features"]
    assert "lme4" in bundle.path("analysis/r/table2_models.R").read_text()
    assert not any(item == "table2_mixed" for item, _ in outputs.skipped)


@pytest.mark.r
def test_one_reader_and_a_feature_nobody_marked_are_analysed_not_refused(tmp_path):
    """A real reading: one reader, one reading, opacity never ticked. The analysis completes: the other
    features are fitted without a reader term, and the R script leaves the constant feature out and says so."""
    import shutil

    from modelling.stages.cohort import build_cohort
    from modelling.config import load_config

    root = tmp_path / "b"
    build_cohort(load_config("tiny"), root, workers=1)
    bundle = Bundle(root)
    one = synthetic_assessments()
    one = one[(one["reader"] == "A") & (one["round"] == 1)].copy()
    one.loc[one["feature"] == "airspace_opacity", "present"] = False
    with bundle.stage("human_readers", config={"seed": 7}, seed=7) as st:
        st.write_table("reader_assessments", one)
    outputs = analyse_bundle(root)
    assert "analyse" in Bundle(root).stages  # complete, not left half-written
    mixed = pd.read_csv(Bundle(root).path("analysis/table2_mixed.csv"), keep_default_na=False).set_index("feature")
    assert mixed.loc["cardiomegaly", "error"] == "" and 0 <= float(mixed.loc["cardiomegaly", "p_value"]) < 0.05
    assert "present is False in every one" in mixed.loc["airspace_opacity", "error"]
    script = Bundle(root).path("analysis/r/table2_models.csv").read_text()
    assert "airspace_opacity" not in script and "cardiomegaly" in script
    assert "present ~ regime + (1 | patient_id)" in Bundle(root).path("analysis/r/table2_models.R").read_text()
    assert any(item.startswith("table2_r_script: airspace_opacity") for item, _ in outputs.skipped)
    shutil.rmtree(root)


def _index_of(assessments: pd.DataFrame, tag: str) -> pd.DataFrame:
    """A GVR index holding the assessed GVRs (`tag` makes two versions of it differ in content)."""
    from tests.examples import examples

    ids = sorted(assessments["gvr_id"].unique())
    row = examples()["gvr_index"].iloc[0]
    index = pd.DataFrame([row] * len(ids)).reset_index(drop=True)
    index["gvr_id"], index["image_id"] = ids, [f"{tag}{k}" for k in range(len(ids))]
    return index


def test_answers_about_gvrs_the_bundle_no_longer_holds_are_refused_before_writing(tmp_path):
    """A cohort ingested again, or GVRs made again, after the readers read them: Table 2 would count answers
    about other pictures (a new user's test drive found reproduce and analyse doing so)."""
    from analysis.analyse import StaleAssessmentsError
    from modelling.config import load_config
    from modelling.stages.cohort import build_cohort

    root = tmp_path / "b"
    build_cohort(load_config("tiny"), root, workers=1)
    bundle = Bundle(root)
    answers = synthetic_assessments()
    with bundle.stage("explain", config={"v": 1}) as st:
        st.write_table("gvr_index", _index_of(answers, "a"))
    with bundle.stage("readers-human", config={"v": 1}, inputs=["tables/gvr_index.parquet"]) as st:
        st.write_table("reader_assessments", answers)
    analyse_bundle(root, mixed_models=False)  # current: analysed
    with bundle.stage("explain", config={"v": 2}) as st:  # the GVRs made again, under the same ids
        st.write_table("gvr_index", _index_of(answers, "b"))
    with pytest.raises(StaleAssessmentsError, match="written again by stage 'explain'.*Draw a new packet"):
        analyse_bundle(root, mixed_models=False, force=True)
    # answers unblinded before the stage recorded its input: told by the GVRs missing from the index
    with bundle.stage("readers-human", config={"v": 2}) as st:
        st.write_table("reader_assessments", answers.assign(gvr_id=answers["gvr_id"] + "x"))
    written = Bundle(root).record("analysis/analysis_outputs.json").sha256
    with pytest.raises(StaleAssessmentsError, match=r"of the \d+ GVRs assessed .* are not in tables/gvr_index"):
        analyse_bundle(root, mixed_models=False, force=True)
    assert Bundle(root).record("analysis/analysis_outputs.json").sha256 == written  # nothing written


def test_tables_of_a_stage_that_did_not_complete_are_refused_before_writing(tmp_path):
    """A cohort stage stopped part-way leaves part of its tables recorded: Table 1 of part of a cohort, written
    with exit 0, is what a user's test drive found."""
    from data_schema.bundle import UnfinishedStageError
    from modelling.config import load_config
    from modelling.stages.cohort import build_cohort

    root = tmp_path / "b"
    build_cohort(load_config("tiny"), root, workers=1)
    bundle = Bundle(root)
    patients = bundle.read_table("patients")
    with pytest.raises(RuntimeError, match="stopped"):
        with bundle.stage("cohort", config={"again": True}) as st:  # written again, then stopped
            st.write_table("patients", patients.iloc[:3])
            raise RuntimeError("stopped")
    assert set(Bundle(root).unfinished_stages()) == {"cohort"}
    with pytest.raises(UnfinishedStageError, match="stage 'cohort' did not complete.*rerun it"):
        analyse_bundle(root, mixed_models=False)
    assert not any(rel.startswith("analysis/") for rel in Bundle(root).files)
