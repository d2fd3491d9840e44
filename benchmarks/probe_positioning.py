"""Do the predictors rely on how each patient is positioned, which the interventions leave out? (issue 15)

The phantom positions every patient in their own way (rotation, shift and scale drawn per patient,
with a little jitter per radiograph): a patient idiosyncrasy like the skin markers, but one that moves
every edge of the film. The fidelity stage's interventions (heart, effusion, opacity, pacemaker, body
mass, projection, markers, shortcut) do not include it. This probe renders radiographs again with
neutral positioning (no rotation or shift, scale 1; same noise), encodes them and predicts, per model
and per role (the radiographs a model trained on against those it did not), for those predicted at or
above the threshold. A model that memorised patients by their positioning loses more on its own
training radiographs than on held-out ones.

It also asks how much of each GVR's change the interventions' true change maps explain (median R^2 of
the least-squares fit of :func:`modelling.explain.fidelity.decompose`), with and without a positioning
map added, and with the change maps of small moves of rotation, shift, scale and exposure in either
direction (:data:`DIRECTIONS`). The fidelity stage now reports the same on the GVR radiographs (``fidelity/summary.json``
``positioning``); this probe adds the split by role.

Usage::

    python benchmarks/probe_positioning.py study [--config default] [--per-role 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.cohort import phantom  # noqa: E402
from modelling.cohort.counterfactual import render_intervened  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.explain.fidelity import explained  # noqa: E402
from modelling.nets.training import encode  # noqa: E402
from modelling.stages.artifacts import load_encoder, load_predictor, load_render_params  # noqa: E402
from modelling.stages.explain import predict_log_bnp  # noqa: E402
from modelling.stages.fidelity import INTERVENTION_FEATURES, positioning_evidence, positioning_fall  # noqa: E402


#: Small moves of each acquisition parameter (about 0.4-0.8 of its spread in the phantom's draws), whose
#: change maps let a least-squares fit find positioning and exposure moved in any direction.
DIRECTIONS = {"rotation_deg": 2.0, "shift_x": 0.02, "shift_y": 0.02, "scale": 0.02, "exposure": 0.03}


def direction_maps(params: dict, original: np.ndarray, size: int) -> np.ndarray:
    """(n, len(DIRECTIONS), size, size): original minus the render with one parameter of :data:`DIRECTIONS`
    moved by its step (same noise)."""
    maps = []
    for name, step in DIRECTIONS.items():
        moved = {k: np.array(v, copy=True) for k, v in params.items()}
        moved[name] = np.asarray(moved[name], dtype=np.float64) + step
        maps.append((original.astype(np.float32) - phantom.render(moved, size)[0].astype(np.float32)) / 255.0)
    return np.stack(maps, axis=1)


def probe(root, config, *, per_role: int = 100, seed: int = 0) -> dict:
    bundle = Bundle(root, create=False)
    size = config.image_size
    predictions = bundle.read_table("predictions")
    threshold = float(np.log(config.cohort.bnp_threshold_ng_l))
    encoder = load_encoder(bundle)
    rng = np.random.default_rng(seed)
    reliance, fits = [], []
    for model_id in sorted(m for m in predictions["model_id"].unique() if m.startswith("mlp-")):
        predictor = load_predictor(bundle, model_id)
        rows = predictions[(predictions["model_id"] == model_id) & (np.log(predictions["bnp_pred_ng_l"]) >= threshold)]
        for role, group in rows.groupby("role"):
            ids = group["image_id"].to_numpy()
            ids = rng.choice(ids, size=min(per_role, len(ids)), replace=False)
            params = load_render_params(bundle, list(ids))
            original, _ = phantom.render(params, size)
            before = predict_log_bnp(predictor, encode(encoder, original))
            fall, _ = positioning_fall(predictor, encoder, params, original, before, size)
            reliance.append({"model_id": model_id, "role": role, "radiographs": int(len(ids)),
                             "mean_fall": float(fall.mean()), "mean_absolute_fall": float(np.abs(fall).mean())})
    index = bundle.read_table("gvr_index")
    for model_id, gvrs in index[index["kind"] == "gvr"].groupby("model_id"):
        params = load_render_params(bundle, gvrs["image_id"].tolist())
        original, _ = phantom.render(params, size)
        maps = np.stack([(original.astype(np.float32) - render_intervened(params, f, size).astype(np.float32)) / 255.0
                         for f in INTERVENTION_FEATURES], axis=1)
        diseased = np.stack([bundle.read_image(p) for p in gvrs["diseased_path"]]).astype(np.float32)
        healthy = np.stack([bundle.read_image(p) for p in gvrs["healthy_path"]]).astype(np.float32)
        change = (diseased - healthy) / 255.0
        predictor = load_predictor(bundle, model_id)
        before = predict_log_bnp(predictor, encode(encoder, original))
        evidence = positioning_evidence(predictor, encoder, params, original, before, maps, change, size)
        directions = direction_maps(params, original, size)
        with_directions = np.concatenate([maps, directions], axis=1)
        alone = {f"median_r2_with_{name}": float(np.nanmedian(explained(
            change, np.concatenate([maps, directions[:, j:j + 1]], axis=1)))) for j, name in enumerate(DIRECTIONS)}
        fits.append({"model_id": model_id, "gvrs": int(len(gvrs)),
                     **{k: evidence[k] for k in ("median_r2_interventions", "median_r2_with_positioning")},
                     "median_r2_with_directions": float(np.nanmedian(explained(change, with_directions))),
                     **alone, "gvr_median_coefficient": evidence["gvr_median_coefficient"]})
    return {"reliance": reliance, "gvr_fit": fits}


if __name__ == "__main__":
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--config", help="profile or YAML (default: the bundle's config.yaml)")
    parser.add_argument("--per-role", type=int, default=100)
    args = parser.parse_args()
    config = load_config(args.config or str(Path(args.bundle) / "config.yaml"))
    result = probe(args.bundle, config, per_role=args.per_role)
    print(pd.DataFrame(result["reliance"]).round(3).to_string(index=False))
    print(pd.DataFrame(result["gvr_fit"]).round(3).T.to_string(header=False))
