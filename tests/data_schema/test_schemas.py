"""The schemas: every table documented, valid examples pass, the committed JSON matches the models."""

from __future__ import annotations

import json

import pytest

from data_schema import SCHEMAS, validate_frame
from data_schema.frictionless import JSON_DIR, render, table_schema
from tests.examples import examples

EXPECTED_TABLES = {
    "patients", "radiographs", "bnp_results", "pairing", "splits", "phantom_truth", "phantom_render",
    "latents_index", "predictions", "gvr_index", "faithfulness", "gvr_truth", "model_reliance", "reader_assessments",
    "reading_key", "shortcut_shares", "shortcut_models", "image_rationales", "radiograph_masks",
}


def test_every_table_of_the_issue_has_a_schema():
    assert set(SCHEMAS) == EXPECTED_TABLES


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_valid_example_passes(name):
    assert validate_frame(examples()[name], name) == []


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_every_column_is_described(name):
    for field in table_schema(SCHEMAS[name])["fields"]:
        assert field["description"].strip(), f"{name}.{field['name']} has no description"


def test_units_are_documented_for_measurements():
    units = {
        (f["name"]): f.get("unit")
        for name in ("bnp_results", "radiographs", "predictions")
        for f in table_schema(SCHEMAS[name])["fields"]
    }
    assert units["bnp_ng_l"] == "ng/L"
    assert units["bnp_pred_ng_l"] == "ng/L"
    assert units["age_years"] == "years"
    assert units["height_px"] == "px"


def test_allowed_values_are_exported_as_constraints():
    fields = {f["name"]: f for f in table_schema(SCHEMAS["bnp_results"])["fields"]}
    assert fields["bnp_ng_l"]["constraints"]["exclusiveMinimum"] == 0
    assert fields["result_id"]["constraints"] == {"required": True, "unique": True,
                                                  "pattern": fields["result_id"]["constraints"]["pattern"]}
    sets = {f["name"]: f for f in table_schema(SCHEMAS["splits"])["fields"]}["set"]
    assert sets["constraints"]["enum"] == ["unlabelled", "train", "test"]
    ages = {f["name"]: f for f in table_schema(SCHEMAS["patients"])["fields"]}["age_years"]
    assert (ages["constraints"]["minimum"], ages["constraints"]["maximum"]) == (0, 120)


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_committed_json_matches_the_model(name):
    path = JSON_DIR / f"{name}.schema.json"
    assert path.is_file(), f"{path} missing: run `gvr schema export`"
    assert path.read_text("utf-8") == render(SCHEMAS[name]), f"{path} drifted: run `gvr schema export`"


def test_no_stray_json_files():
    names = {p.name.removesuffix(".schema.json") for p in JSON_DIR.glob("*.json")}
    assert names == EXPECTED_TABLES


def test_json_is_a_table_schema_r_can_read():
    doc = json.loads((JSON_DIR / "predictions.schema.json").read_text("utf-8"))
    assert doc["primaryKey"] == ["image_id", "model_id"]
    assert doc["missingValues"] == [""]
    types = {f["name"]: f["type"] for f in doc["fields"]}
    assert types == {
        "image_id": "string", "model_id": "string", "predictor": "string", "regime": "string",
        "role": "string", "checkpoint_sha256": "string", "bnp_true_ng_l": "number", "bnp_pred_ng_l": "number",
    }


def test_drift_is_detected(tmp_path):
    # The drift test above must be able to fail: a changed description changes the rendering.
    spec = SCHEMAS["patients"]
    text = render(spec)
    assert text.replace("Sex recorded", "Sex as recorded") != text
