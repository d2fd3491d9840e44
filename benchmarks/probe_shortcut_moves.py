"""Which features does a re-encoded GVR remove from a model that relies on a shortcut? (issue 16 probe)

For one bundle of the shortcut benchmark, each model's radiographs are moved with re-encoded pattern
and gradient moves (``gvr.reencode``, the bundle's margin) and each GVR's change is decomposed onto the
phantom's per-feature true change maps (:func:`modelling.explain.fidelity.decompose`: 1 = the feature
removed as the phantom removes it). Beside it, the model's own attribution of the GVR's effect by region:
the diseased reconstruction gets the healthy one's pixels inside one mask, and the fall in predicted log
BNP of that composite, encoded again, is the region's effect (``probe_region_effect.effects_by_region``). Last, per
feature, how far its removal moves the code against the fall in prediction it brings
(:func:`latent_costs`).

Usage::

    python benchmarks/probe_shortcut_moves.py DIR/seed-20190201/strength-100 [--random N]

``--random N``: N of the model's held-out radiographs predicted positive, drawn with a fixed seed,
instead of the bundle's GVR radiographs (the most highly predicted).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from data_schema.tables import INTERVENTION_FEATURES  # noqa: E402
from modelling.cohort import phantom  # noqa: E402
from modelling.cohort.counterfactual import render_intervened  # noqa: E402
from modelling.config import load_config, move_options  # noqa: E402
from modelling.explain.fidelity import decompose  # noqa: E402
from modelling.explain.gvr import aim, move, scorer  # noqa: E402
from modelling.nets.training import decode, encode  # noqa: E402
from modelling.stages.artifacts import (  # noqa: E402
    load_decoder,
    load_encoder,
    load_masks,
    load_predictor,
    load_render_params,
    training_covariance,
)
from modelling.stages.explain import _select, predict_log_bnp  # noqa: E402
from probe_region_effect import effects_by_region  # noqa: E402


def _cases(bundle: Bundle, config, random: int):
    """Per model: its predictor, the radiographs probed (its GVRs', or `random` drawn positives), their
    stored codes, render parameters and original renders."""
    index = bundle.read_table("gvr_index")
    gvrs = index[index["kind"] == "gvr"]
    latents_index = bundle.read_table("latents_index").set_index("image_id")
    latents = bundle.read_array(latents_index["latents_path"].iloc[0])
    predictions = bundle.read_table("predictions")
    for model_id, own in gvrs.groupby("model_id", sort=True):
        ids = (_select(predictions, model_id, above=True, threshold=config.cohort.bnp_threshold_ng_l, n=random,
                       seed=config.seed, selection="random") if random else own["image_id"].tolist())
        params = load_render_params(bundle, ids)
        original, _ = phantom.render(dict(params), config.image_size)
        yield (model_id, load_predictor(bundle, model_id), ids, latents[latents_index.loc[ids, "row"].to_numpy()],
               params, original)


def probe(root, config, random: int = 0) -> list[dict]:
    bundle = Bundle(root, create=False)
    g = config.gvr
    decoder, encoder = load_decoder(bundle), load_encoder(bundle)
    truth = bundle.read_table("phantom_truth")
    rows = []
    for model_id, predictor, ids, z0, params, original in _cases(bundle, config, random):
        maps = np.stack([(original.astype(np.float32) - render_intervened(params, f, config.image_size)
                          .astype(np.float32)) / 255.0 for f in INTERVENTION_FEATURES], axis=1)
        masks = load_masks(bundle, truth, ids)
        covariance = training_covariance(bundle, model_id)
        for how in ("pattern", "gradient"):
            path = move(z0, decoder, scorer(predictor, reencode=True, encoder=encoder, decoder=decoder),
                        target_log_bnp=aim(np.log(config.cohort.bnp_threshold_ng_l), "down", g.margin),
                        direction="down", **move_options(g) | {"metric_ridge": None}, frames=2,
                        covariance=covariance if how == "pattern" else None)
            diseased, healthy = decode(decoder, path.start), decode(decoder, path.end)
            change = (diseased.astype(np.float32) - healthy.astype(np.float32)) / 255.0
            coef = decompose(change, maps).mean(axis=0)
            effects = effects_by_region(predictor, encoder, diseased, healthy, masks, ids)
            rows.append({"bundle": str(root), "model_id": model_id, "radiographs": "random" if random else "GVRs",
                         "move": how, "reached": float(path.reached.mean()),
                         **{f"coef_{f}": float(c) for f, c in zip(INTERVENTION_FEATURES, coef)},
                         **{f"effect_{k}": v for k, v in effects.items()}})
    return rows


def latent_costs(root, config, random: int = 0) -> list[dict]:
    """Per model and feature: how far removing the feature moves the code (the intervention's change in
    the encoder's code, Euclidean), the fall in prediction it brings, the fall per unit of code, and the
    cosine of a re-encoded move's first step from the radiograph's code (down the gradient, or the
    pattern) with that change, over the radiographs that carry the feature."""
    bundle = Bundle(root, create=False)
    decoder, encoder = load_decoder(bundle), load_encoder(bundle)
    rows = []
    for model_id, predictor, ids, stored, params, original in _cases(bundle, config, random):
        z = encode(encoder, original)
        before = predict_log_bnp(predictor, z)
        # the first step's direction of a re-encoded move from each stored code: down the gradient, or the pattern
        score = scorer(predictor, reencode=True, encoder=encoder, decoder=decoder)
        start = torch.from_numpy(stored.astype(np.float32)).requires_grad_()
        score(start).sum().backward()
        down = -start.grad.numpy().astype(np.float64)
        steps = {"gradient": down, "pattern": down @ training_covariance(bundle, model_id)}
        for feature in INTERVENTION_FEATURES:
            changed = render_intervened(params, feature, config.image_size)
            carries = ~(changed == original).all(axis=(1, 2))
            if not carries.any():
                continue
            zc = encode(encoder, changed[carries])
            distance = np.linalg.norm(z[carries] - zc, axis=1)
            fall = before[carries] - predict_log_bnp(predictor, zc)
            away = zc - z[carries]
            cosine = {how: float(np.mean(np.sum(v[carries] * away, axis=1) / np.maximum(
                np.linalg.norm(v[carries], axis=1) * np.linalg.norm(away, axis=1), 1e-12))) for how, v in steps.items()}
            rows.append({"model_id": model_id, "feature": feature, "radiographs": int(carries.sum()),
                         "latent_distance": float(distance.mean()), "fall": float(fall.mean()),
                         "fall_per_unit": float(np.mean(fall / np.maximum(distance, 1e-6))),
                         **{f"cosine_{how}": c for how, c in cosine.items()}})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--random", type=int, default=0, help="explain N random positive held-out radiographs")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    rows = [r for root in args.bundles for r in probe(root, config, args.random)]
    pd.set_option("display.width", 250)
    print(pd.DataFrame(rows).drop(columns="bundle").round(3).T.to_string())
    costs = [{"bundle": str(root), **r} for root in args.bundles for r in latent_costs(root, config, args.random)]
    print(pd.DataFrame(costs).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
