"""How much of a GVR's effect on the model comes from each mask region? (a probe for the audit, issue 16)

For each GVR of a phantom bundle, the diseased reconstruction gets the healthy one's pixels inside one
mask (heart, effusion, opacity, soft tissue, markers, shortcut) and nothing else; the composite is
encoded and predicted, and the fall in predicted log BNP is that region's share of the GVR's effect,
in the model's own units rather than in pixels. Pixel shares undercount a small region such as the
shortcut marker (0.2 % of the film) however much the model relies on it.

Usage::

    python benchmarks/probe_region_effect.py shortcuts/seed-20190201/strength-100 [more bundles]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.explain.audit import DISEASE_FEATURES, NON_DISEASE_MASKS  # noqa: E402
from modelling.nets.training import encode  # noqa: E402
from modelling.stages.artifacts import load_encoder, load_masks, load_predictor  # noqa: E402
from modelling.stages.explain import predict_log_bnp  # noqa: E402


def effects_by_region(predictor, encoder, diseased: np.ndarray, healthy: np.ndarray, masks: dict, ids) -> dict:
    """Mean fall in predicted log BNP when the diseased reconstructions (uint8) get the healthy ones' pixels
    inside each mask (``masks``: per radiograph id, from :func:`load_masks`), and the non-disease share of
    those falls (None when none moved)."""
    diseased, healthy = diseased.astype(np.float32), healthy.astype(np.float32)
    base = predict_log_bnp(predictor, encode(encoder, diseased.astype(np.uint8)))
    out = {}
    for name in (*NON_DISEASE_MASKS, *DISEASE_FEATURES):
        m = np.stack([masks[i][name] for i in ids]).astype(np.float32)
        composite = np.round(diseased * (1 - m) + healthy * m).astype(np.uint8)
        out[name] = float((base - predict_log_bnp(predictor, encode(encoder, composite))).mean())
    nd = sum(abs(out[m]) for m in NON_DISEASE_MASKS)
    d = sum(abs(out[m]) for m in DISEASE_FEATURES)
    out["non_disease_share"] = nd / (nd + d) if nd + d > 0 else None
    return out


def region_effects(root) -> list[dict]:
    bundle = Bundle(root, create=False)
    index = bundle.read_table("gvr_index")
    gvrs = index[index["kind"] == "gvr"]
    masks = load_masks(bundle, bundle.read_table("phantom_truth"), gvrs["image_id"].unique())
    encoder = load_encoder(bundle)
    out = []
    for model_id, rows in gvrs.groupby("model_id"):
        predictor = load_predictor(bundle, model_id)
        diseased = np.stack([bundle.read_image(p) for p in rows["diseased_path"]])
        healthy = np.stack([bundle.read_image(p) for p in rows["healthy_path"]])
        whole = (predict_log_bnp(predictor, encode(encoder, diseased))
                 - predict_log_bnp(predictor, encode(encoder, healthy)))
        effects = effects_by_region(predictor, encoder, diseased, healthy, masks, rows["image_id"])
        share = effects.pop("non_disease_share")
        out.append({"bundle": str(root), "model_id": model_id, "gvr_effect": float(whole.mean()),
                    **{f"effect_{name}": v for name, v in effects.items()}, "non_disease_share_of_effect": share})
    return out


if __name__ == "__main__":
    import pandas as pd

    rows = [r for root in sys.argv[1:] for r in region_effects(root)]
    print(pd.DataFrame(rows).round(3).to_string(index=False))
