"""How much does each predictor's output move when the whole film is rotated, shifted or scaled a little?

Held-out radiographs of each MLP (test for the correct model, the withheld quarter for the overfitted
one) get random affine copies within the limits of ``predictors.augment_*`` (5 degrees, 5 % and 5 %
unless a config says otherwise; :func:`modelling.nets.augment.positional_copies`); the copies are
encoded and predicted, and the mean absolute change in predicted log BNP from the original is the
model's response to positioning of the film. It judges ``predictors.augment_copies``: a predictor fitted
on such copies should move less (benchmarks/RESULTS.md, "Positional copies for the predictors").

Usage::

    python benchmarks/probe_affine_response.py study [more bundles] [--config default] [--radiographs 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.nets.augment import positional_copies  # noqa: E402
from modelling.nets.training import encode  # noqa: E402
from modelling.stages.artifacts import load_encoder, load_images, load_predictor  # noqa: E402
from modelling.stages.explain import predict_log_bnp  # noqa: E402

HELD_OUT = {"mlp-correct": "test", "mlp-overfitted": "validation"}


def affine_response(root, config, *, radiographs: int = 200, copies: int = 2, seed: int = 99) -> list[dict]:
    """Per MLP: the mean absolute change in predicted log BNP of `copies` affine copies of up to
    `radiographs` held-out radiographs, and how many were moved."""
    bundle = Bundle(root, create=False)
    predictions = bundle.read_table("predictions")
    encoder = load_encoder(bundle)
    table = bundle.read_table("radiographs").set_index("image_id")
    p = config.predictors
    out = []
    for model_id, role in HELD_OUT.items():
        ids = predictions[(predictions["model_id"] == model_id) & (predictions["role"] == role)]["image_id"]
        images = load_images(bundle, table.loc[ids.to_numpy()[:radiographs]].reset_index())
        predictor = load_predictor(bundle, model_id)
        base = predict_log_bnp(predictor, encode(encoder, images))
        copied, owner = positional_copies(images, copies, rotation_deg=p.augment_rotation_deg,
                                          shift=p.augment_shift, scale=p.augment_scale, seed=seed)
        moved = predict_log_bnp(predictor, encode(encoder, copied))
        out.append({"bundle": str(root), "model_id": model_id, "role": role, "radiographs": int(len(images)),
                    "mean_absolute_change": float(np.abs(moved - base[owner]).mean())})
    return out


def main(argv=None) -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--config", default="default")
    parser.add_argument("--radiographs", type=int, default=200)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    rows = [r for root in args.bundles for r in affine_response(root, config, radiographs=args.radiographs)]
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
