"""One small valid table per bundle schema, shared by the tests."""

from __future__ import annotations

import pandas as pd

SHA = "ab" * 32


def examples() -> dict[str, pd.DataFrame]:
    ts = pd.to_datetime
    return {
        "patients": pd.DataFrame({
            "patient_id": ["p1", "p2", "p3"],
            "sex": ["F", "M", "F"],
            "age_years": [74.0, 57.5, 0.0],
        }),
        "radiographs": pd.DataFrame({
            "image_id": ["i1", "i2", "i3"],
            "patient_id": ["p1", "p1", "p2"],
            "acquired_at": ts(["2012-03-04 05:06:07", "2013-01-01 00:00:00", "2016-12-31 23:59:59"]),
            "age_years": [74.0, 75.0, 57.5],
            "projection": ["AP", "PA", "PA"],
            "image_path": ["images/radiographs-00000.npy"] * 3,
            "image_index": [0, 1, 2],
            "height_px": [64, 64, 64],
            "width_px": [64, 64, 64],
            "pixel_spacing_mm": [None, 2.8, 3.1],
        }),
        "bnp_results": pd.DataFrame({
            "result_id": ["r1", "r2"],
            "patient_id": ["p1", "p2"],
            "collected_at": ts(["2012-03-04 20:00:00", "2016-12-30 08:00:00"]),
            "bnp_ng_l": [350.0, 99.5],
        }),
        "pairing": pd.DataFrame({
            "image_id": ["i1", "i3"],
            "result_id": ["r1", "r2"],
            "hours_apart": [14.9, 35.99],
            "bnp_ng_l": [350.0, 99.5],
        }),
        "splits": pd.DataFrame({
            "image_id": ["i1", "i2", "i3"],
            "patient_id": ["p1", "p1", "p2"],
            "set": ["train", "train", "test"],
        }),
        "phantom_truth": pd.DataFrame({
            "image_id": ["i1"],
            "cardiothoracic_ratio": [0.58],
            "cardiomegaly": [True],
            "effusion_left": [0.1],
            "effusion_right": [0.0],
            "opacity": [0.3],
            "pacemaker": [False],
            "body_mass_index": [24.0],
            "term_cardiomegaly": [0.8],
            "term_effusion": [0.3],
            "term_opacity": [0.2],
            "term_age": [0.4],
            "term_pacemaker": [0.0],
            "term_body_mass": [-0.1],
            "patient_effect": [0.05],
            "visit_effect": [-0.02],
            "log_bnp_noiseless": [5.8],
            "mask_path": ["masks/masks-00000.npz"],
            "mask_index": [0],
        }),
        "latents_index": pd.DataFrame({
            "image_id": ["i1", "i2"],
            "encoder_id": ["enc-1", "enc-1"],
            "latents_path": ["arrays/latents.npy", "arrays/latents.npy"],
            "row": [0, 1],
        }),
        "predictions": pd.DataFrame({
            "image_id": ["i1", "i1"],
            "model_id": ["mlp-correct", "mlp-overfitted"],
            "predictor": ["mlp", "mlp"],
            "regime": ["correct", "overfitted"],
            "role": ["train", "validation"],
            "checkpoint_sha256": [SHA, SHA],
            "bnp_true_ng_l": [350.0, 350.0],
            "bnp_pred_ng_l": [280.0, 410.0],
        }),
        "gvr_index": pd.DataFrame({
            "gvr_id": ["g1"],
            "image_id": ["i1"],
            "model_id": ["mlp-correct"],
            "regime": ["correct"],
            "kind": ["gvr"],
            "target_bnp_ng_l": [100.0],
            "start_pred_ng_l": [280.0],
            "end_pred_ng_l": [95.0],
            "steps": [37],
            "reached": [True],
            "latent_distance": [1.2],
            "image_distance": [0.03],
            "original_path": ["gvr/g1/original.png"],
            "diseased_path": ["gvr/g1/diseased.png"],
            "healthy_path": ["gvr/g1/healthy.png"],
            "overlay_path": ["gvr/g1/overlay.png"],
            "movie_path": [None],
        }),
        "reader_assessments": pd.DataFrame({
            "reader": ["A", "A", "B"],
            "round": [1, 2, 1],
            "gvr_id": ["g1", "g1", "g1"],
            "regime": ["correct", "correct", "correct"],
            "patient_id": ["p1", "p1", "p1"],
            "feature": ["cardiomegaly", "cardiomegaly", "cardiomegaly"],
            "present": [True, False, True],
            "simulated": [False, False, False],
        }),
        "reading_key": pd.DataFrame({
            "blinded_id": ["x7f3", "q2a9"],
            "gvr_id": ["g1", "g2"],
            "model_id": ["mlp-correct", "mlp-overfitted"],
            "regime": ["correct", "overfitted"],
            "image_id": ["i1", "i1"],
            "patient_id": ["p1", "p1"],
        }),
    }
