"""The phantom cohort's tables: calibrated to the paper's Table 1, structured as the paper, seeded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from modelling.cohort.synthetic import BnpModel, synthesize
from modelling.config import load_config
from modelling.stages.cohort import summary, tables

# A cohort of more than 5,000 radiographs, labelled and unlabelled sets in the paper's proportions
# of radiographs per patient (7,390 / 5,232 and 96,099 / 41,480).
CALIBRATION = dict(labelled_patients=3700, labelled_radiographs=5226,
                   unlabelled_patients=2200, unlabelled_radiographs=5097)


@pytest.fixture(scope="module")
def cohort():
    cfg = load_config("default")
    cfg = dataclasses.replace(cfg, cohort=dataclasses.replace(cfg.cohort, **CALIBRATION))
    c = synthesize(cfg.cohort, seed=cfg.seed)
    t = tables(c, cfg)
    return cfg, c, t, summary(t, threshold=100.0)


def test_calibration_cohort_is_large_enough(cohort):
    _, c, _, _ = cohort
    assert len(c.radiographs) >= 5000


@pytest.mark.parametrize("name, q1, median, q3", [
    # Table 1: "Median BNP (ng/L)* 350 (121-978) 374 (127-1010)" (test, training), IQR in parentheses
    ("test", 121, 350, 978),
    ("train", 127, 374, 1010),
])
def test_bnp_matches_table_1(cohort, name, q1, median, q3):
    s = cohort[3]["sets"][name]
    assert 330 <= s["bnp_median"] <= 400
    assert s["bnp_q1"] == pytest.approx(q1, rel=0.2)
    assert s["bnp_q3"] == pytest.approx(q3, rel=0.2)
    # "No. of radiographs with BNP < 100 ng/L 301/1518 (20) 1244/5872 (21)"
    assert 0.18 <= s["below_threshold"] / s["radiographs"] <= 0.23


@pytest.mark.parametrize("name, low, high, sd_low, sd_high", [
    # Table 1: "Mean age ± standard deviation (y) 74 (16) 74 (16) 57 (22)"
    ("test", 72, 76, 14, 18), ("train", 72, 76, 14, 18), ("unlabelled", 55, 59, 20, 24),
])
def test_ages_match_table_1(cohort, name, low, high, sd_low, sd_high):
    s = cohort[3]["sets"][name]
    assert low <= s["age_mean"] <= high
    assert sd_low <= s["age_sd"] <= sd_high
    assert 0 <= s["age_min"] and s["age_max"] <= 107


@pytest.mark.parametrize("name", ["test", "train", "unlabelled"])
def test_sex_ratio_matches_table_1(cohort, name):
    # "No. of female patients 492/1047 (47) 1884/4185 (45) 18 549/41 480 (45)"
    s = cohort[3]["sets"][name]
    assert 0.43 <= s["female"] / s["patients"] <= 0.48


def test_structure_keeps_the_papers_proportions(cohort):
    cfg, c, t, s = cohort
    sets = s["sets"]
    assert sets["train"]["patients"] + sets["test"]["patients"] == CALIBRATION["labelled_patients"]
    assert sets["train"]["patients"] == int(np.floor(0.8 * CALIBRATION["labelled_patients"]))
    assert sets["train"]["radiographs"] + sets["test"]["radiographs"] == CALIBRATION["labelled_radiographs"]
    assert sets["unlabelled"]["radiographs"] == CALIBRATION["unlabelled_radiographs"]
    assert sets["unlabelled"]["patients"] == CALIBRATION["unlabelled_patients"]


def test_pairing_recovers_the_labelled_patients_and_ignores_decoy_results(cohort):
    _, c, t, _ = cohort
    paired_patients = set(t["splits"].loc[t["splits"]["set"] != "unlabelled", "patient_id"])
    assert paired_patients == set(c.labelled_patients)
    decoys = set(c.bnp_results["patient_id"]) - set(c.labelled_patients)
    assert len(decoys) > 50  # unlabelled patients with BNP results, all outside the window
    assert (t["pairing"]["hours_apart"] <= 36).all()
    unpaired = set(c.bnp_results["result_id"]) - set(t["pairing"]["result_id"])
    assert unpaired, "some results are more than 36 h from any radiograph"


def test_visits_span_the_study_period_and_disease_changes_between_visits(cohort):
    cfg, c, t, _ = cohort
    years = c.radiographs["acquired_at"].dt.year
    assert years.min() == cfg.cohort.first_year and years.max() == cfg.cohort.last_year
    truth = t["phantom_truth"].merge(c.radiographs[["image_id", "patient_id"]], on="image_id")
    within = truth.groupby("patient_id")["cardiothoracic_ratio"].std().dropna()
    assert (within > 0).mean() > 0.95


def test_idiosyncrasies_repeat_within_a_patient(cohort):
    _, c, _, _ = cohort
    per_patient = c.render.assign(patient_id=c.radiographs["patient_id"]).groupby("patient_id")
    assert (per_patient["markers_seed"].nunique() == 1).all()
    assert (per_patient["electrodes"].nunique() == 1).all()
    assert c.render["markers_seed"].nunique() > 0.99 * c.radiographs["patient_id"].nunique()


def test_bnp_model_terms_add_up_and_have_the_documented_directions(cohort):
    _, c, t, _ = cohort
    truth = t["phantom_truth"]
    terms = truth[[col for col in truth if col.startswith("term_")]].sum(axis=1)
    np.testing.assert_allclose(truth["log_bnp_noiseless"], BnpModel().intercept + terms, atol=1e-9)
    # regress the measured (noisy) log BNP on the features: the model's directions come back
    labelled = t["pairing"].merge(truth, on="image_id").merge(c.radiographs[["image_id", "age_years"]], on="image_id")
    X = np.column_stack([
        np.ones(len(labelled)), labelled["cardiothoracic_ratio"],
        labelled["effusion_left"] + labelled["effusion_right"], labelled["opacity"],
        labelled["age_years"], labelled["pacemaker"].astype(float), labelled["body_mass_index"],
    ])
    coef, *_ = np.linalg.lstsq(X, np.log(labelled["bnp_ng_l"]), rcond=None)
    model = BnpModel()
    expected = [model.cardiomegaly, model.effusion, model.opacity, model.age, model.pacemaker, model.body_mass]
    assert np.all(np.sign(coef[1:]) == np.sign(expected))
    assert coef[1] == pytest.approx(model.cardiomegaly, rel=0.25)
    assert coef[4] == pytest.approx(model.age, rel=0.3)


def test_oracle_auc_is_a_ceiling_that_leaves_room_for_the_papers_082(cohort):
    auc = cohort[3]["oracle_auc"]
    assert 0.85 < auc < 0.97


def test_same_seed_same_tables_other_seed_other_tables():
    cfg = load_config("tiny")
    a = synthesize(cfg.cohort, seed=5)
    b = synthesize(cfg.cohort, seed=5)
    c = synthesize(cfg.cohort, seed=6)
    for name in ("patients", "radiographs", "bnp_results", "truth", "render"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.truth.equals(c.truth)


def test_tables_validate_against_their_schemas(cohort):
    from data_schema import validate_frame

    _, _, t, _ = cohort
    for name, df in t.items():
        assert validate_frame(df, name) == [], name


def test_unlabelled_severity_moves_the_unlabelled_disease_mix_and_nothing_else():
    import dataclasses

    from modelling.config import load_config

    cfg = load_config("default")
    small = dataclasses.replace(cfg.cohort, unlabelled_patients=600, unlabelled_radiographs=1390,
                                labelled_patients=300, labelled_radiographs=424)
    base = synthesize(small, seed=cfg.seed)
    sicker = synthesize(dataclasses.replace(small, unlabelled_severity=0.5), seed=cfg.seed)
    unlabelled = ~base.radiographs["patient_id"].isin(base.labelled_patients).to_numpy()
    assert sicker.truth["cardiomegaly"][unlabelled].mean() > base.truth["cardiomegaly"][unlabelled].mean() + 0.1
    for name in ("cardiothoracic_ratio", "effusion_left", "log_bnp_noiseless"):
        np.testing.assert_array_equal(sicker.truth[name][~unlabelled], base.truth[name][~unlabelled])


def test_the_shortcut_goes_to_the_chosen_share_of_positives_and_nothing_else_changes():
    import dataclasses

    from modelling.config import load_config

    cfg = load_config("tiny")
    plain = synthesize(cfg.cohort, seed=cfg.seed)
    assert not plain.render["shortcut"].any()
    marked = synthesize(dataclasses.replace(cfg.cohort, shortcut_positive_share=1.0, shortcut_negative_share=0.0),
                        seed=cfg.seed)
    bnp = np.clip(np.round(np.exp(marked.truth["log_bnp_noiseless"] + marked.truth["patient_effect"]
                                  + marked.truth["visit_effect"])), 5, 35_000)
    np.testing.assert_array_equal(marked.render["shortcut"].to_numpy() == 1, (bnp >= 100).to_numpy())
    for name in plain.render.columns.drop("shortcut"):
        np.testing.assert_array_equal(marked.render[name], plain.render[name])  # its own random stream
    half = synthesize(dataclasses.replace(cfg.cohort, shortcut_positive_share=0.5, shortcut_negative_share=0.1),
                      seed=cfg.seed)
    positive = (bnp >= 100).to_numpy()
    assert 0.25 < half.render["shortcut"][positive].mean() < 0.75
    assert half.render["shortcut"][~positive].mean() < 0.3
