"""GVRs along one direction per model, the pattern of the model's output: do they rank features as reliance does?
(issue 15)

Haufe et al. (NeuroImage 2014) read a model through its activation pattern, the covariance of the data with the
model's output. For a non-linear model that is ``a = Cov(z, f(z))`` over the codes it trained on: one direction
for every radiograph. The default move instead takes the codes' covariance times the local gradient of the
re-encoded model at every step. This probe moves each GVR radiograph's code along ``-a`` as far as a bisection
needs for the re-encoded model to cross the bundle's aim (``gvr.margin`` past the target), or, with ``--local``,
steps along the covariance times the predictor's gradient on the code at each step (the pattern on the code),
stopped by the re-encoded model. It judges the GVRs as the fidelity and baselines stages judge the bundle's own:
reached, rank agreement with reliance, median pixel r with the true change, measured CTR lower with cardiomegaly,
relevance mass, and the two models' body-mass coefficients (Mann-Whitney U). A diagnostic for whoever plans the
next work; the default move is unchanged.

    python benchmarks/probe_output_pattern.py BUNDLE [BUNDLE ...] [--local]

Reads only; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from data_schema.tables import INTERVENTION_FEATURES  # noqa: E402
from modelling.cohort import ctr  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.explain.faithfulness import driving_masks, pixel_correlation, scores  # noqa: E402
from modelling.explain.fidelity import decompose, intervene, rank_agreement  # noqa: E402
from modelling.explain.gvr import _PatternSteps, aim, scorer  # noqa: E402
from modelling.nets.training import decode, encode  # noqa: E402
from modelling.stages.artifacts import (  # noqa: E402
    load_decoder,
    load_encoder,
    load_masks,
    load_predictor,
    load_render_params,
    training_codes,
)
from probe_contribution_shares import has_truth  # noqa: E402


def output_pattern(codes: np.ndarray, predictor: torch.nn.Module) -> np.ndarray:
    """The unit direction of ``Cov(z, f(z))`` over `codes` (n, d): where the codes vary with the model's output."""
    with torch.no_grad():
        y = predictor(torch.as_tensor(codes, dtype=torch.float32)).numpy().ravel().astype(np.float64)
    z = np.asarray(codes, np.float64)
    a = ((z - z.mean(axis=0)) * (y - y.mean())[:, None]).mean(axis=0)
    return a / max(np.linalg.norm(a), 1e-300)


def line_move(z0: np.ndarray, direction: np.ndarray, score, target: np.ndarray, *, doublings: int = 12,
              halvings: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each code moved along ``-direction`` by the smallest length (to ``2**-halvings`` of the bracket) at which
    `score` reads it at or below its `target`, searched from length 1, doubling up to `doublings` times. A code
    that does not cross within ``2**doublings`` stops there.

    Returns
    -------
    end : ndarray (n, d) float32
    length : ndarray (n,)
    reached : ndarray of bool (n,)
    """
    start = torch.as_tensor(z0, dtype=torch.float32)
    unit = torch.as_tensor(direction, dtype=torch.float32)

    def read(length: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return score(start - torch.as_tensor(length, dtype=torch.float32)[:, None] * unit).numpy().ravel()

    low, high = np.zeros(len(z0)), np.ones(len(z0))
    for _ in range(doublings):
        above = read(high) > target
        if not above.any():
            break
        high[above] *= 2
    for _ in range(halvings):
        middle = (low + high) / 2
        crossed = read(middle) <= target
        high, low = np.where(crossed, middle, high), np.where(crossed, low, middle)
    end = (start - torch.as_tensor(high, dtype=torch.float32)[:, None] * unit).numpy()
    return end, high, read(high) <= target


def local_pattern_move(z0: np.ndarray, predictor, score, covariance: np.ndarray, target: np.ndarray, *,
                       step_size: float, max_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pattern move's steps (:class:`modelling.explain.gvr._PatternSteps`: the covariance times the gradient,
    ``step_size * sqrt(d)`` in whitened units) along the predictor's gradient on the code, each code stopped once
    `score` reads it at or below its `target`. Returns (end, steps, reached)."""
    z = torch.as_tensor(z0, dtype=torch.float32).clone().requires_grad_(True)
    stepper = _PatternSteps(z, covariance, step_size)
    done = np.zeros(len(z0), bool)
    steps = np.zeros(len(z0), int)
    for _ in range(max_steps):
        with torch.no_grad():
            done |= score(z).numpy().ravel() <= target
        if done.all():
            break
        stepper.zero_grad()
        predictor(z).sum().backward()
        z.grad[torch.as_tensor(done)] = 0.0  # a code past its aim stays: a zero gradient steps nowhere
        stepper.step()
        steps += ~done
    with torch.no_grad():
        done |= score(z).numpy().ravel() <= target
    return z.detach().numpy(), steps, done


def probe(root: Path, *, local: bool = False, max_steps: int = 400) -> dict:
    """Per model: the one-direction (or `local`) GVRs of the bundle's GVR radiographs, judged; and per non-disease
    feature the two models' mean coefficients with a two-sided Mann-Whitney P."""
    bundle = Bundle(root, create=False)
    config = load_config(str(Path(root) / "config.yaml"))
    g = config.gvr
    index = bundle.read_table("gvr_index")
    gvrs = index[index["kind"] == "gvr"].sort_values("gvr_id", kind="stable")
    truth = bundle.read_table("gvr_truth").set_index("gvr_id")
    true_change = bundle.read_array("arrays/true_change.npy")
    latents_index = bundle.read_table("latents_index").set_index("image_id")
    latents = bundle.read_array(latents_index["latents_path"].iloc[0])
    decoder, encoder = load_decoder(bundle, config), load_encoder(bundle, config)
    facts = bundle.read_table("phantom_truth").set_index("image_id")
    faith = bundle.read_table("faithfulness") if "tables/faithfulness.parquet" in bundle.files else None
    out: dict = {"move": "local pattern on the code" if local else "one direction, Cov(z, f(z))", "models": {}}
    coefficients = {}
    for model_id, group in gvrs.groupby("model_id", sort=True):
        predictor = load_predictor(bundle, model_id)
        codes = training_codes(bundle, model_id).astype(np.float64)
        z0 = latents[latents_index.loc[group["image_id"], "row"].to_numpy()]
        target = aim(np.log(group["target_bnp_ng_l"].to_numpy(float)), "down", g.margin)
        score = scorer(predictor, reencode=True, encoder=encoder, decoder=decoder)
        if local:
            end, length, reached = local_pattern_move(z0, predictor, score, np.cov(codes, rowvar=False), target,
                                                      step_size=g.step_size, max_steps=max_steps)
        else:
            end, length, reached = line_move(z0, output_pattern(codes, predictor), score, target)
        diseased, healthy = decode(decoder, z0), decode(decoder, end)
        change = (diseased.astype(np.float32) - healthy.astype(np.float32)) / 255.0
        originals = np.stack([bundle.read_image(p) for p in group["original_path"]])
        params = load_render_params(bundle, group["image_id"].tolist())
        seen = intervene(params, originals.shape[-1], originals, encode(encoder, originals), encoder, decoder)
        coef = decompose(change, seen.maps)
        rows = truth.loc[group["gvr_id"]]
        drops = rows[[f"drop_{f}" for f in INTERVENTION_FEATURES]].to_numpy()
        n, k = seen.maps.shape[:2]
        present = (np.abs(seen.maps).reshape(n, k, -1).sum(axis=2) > 0).any(axis=0)
        enlarged = facts.loc[group["image_id"], "cardiothoracic_ratio"].to_numpy() > 0.5
        before, after = ctr.measure(diseased)["ctr"].to_numpy(), ctr.measure(healthy)["ctr"].to_numpy()
        measured = enlarged & np.isfinite(before) & np.isfinite(after)
        masks = load_masks(bundle, facts.reset_index(), group["image_id"])
        mass = [scores(change[j], masks[i], driving_masks(facts.loc[i]))["relevance_mass"]
                for j, i in enumerate(group["image_id"])]
        best = None
        if faith is not None:
            means = faith[faith["model_id"] == model_id].groupby("method")["relevance_mass"].mean()
            best = float(means.drop("gvr", errors="ignore").max()) if len(means.drop("gvr", errors="ignore")) else None
        r = pixel_correlation(change, true_change[rows["change_row"].to_numpy()])
        coefficients[model_id] = coef
        relevance_mass = float(np.nanmean(mass)) if np.isfinite(mass).any() else None
        out["models"][model_id] = {
            "reached": float(reached.mean()), "median_length": float(np.median(length)),
            "rank_agreement": rank_agreement(coef.mean(axis=0)[present], drops.mean(axis=0)[present]),
            "median_pixel_r": float(np.nanmedian(r)) if np.isfinite(r).any() else None,
            "ctr_lower": float((after[measured] < before[measured]).mean()) if measured.any() else None,
            "relevance_mass": relevance_mass,
            "relevance_mass_minus_best_baseline": (relevance_mass - best) if None not in (relevance_mass, best)
            else None,
            "mean_coefficients": dict(zip(INTERVENTION_FEATURES, coef.mean(axis=0).round(4).tolist())),
        }
    models = sorted(coefficients)
    if len(models) == 2:
        j = INTERVENTION_FEATURES.index("body_mass")
        a, b = (coefficients[m][:, j] for m in models)
        out["body_mass"] = {m: float(c[:, j].mean()) for m, c in coefficients.items()} | {
            "p": None if np.all(a == 0) and np.all(b == 0) else float(mannwhitneyu(a, b, alternative="two-sided").pvalue)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--local", action="store_true", help="the pattern on the code, recomputed at each step")
    args = parser.parse_args(argv)
    for root in args.bundles:
        if not has_truth(root):
            return 2
        result = probe(root, local=args.local)
        print(f"{root}: {result['move']}")
        print(pd.DataFrame({m: {k: v for k, v in r.items() if k != "mean_coefficients"}
                            for m, r in result["models"].items()}).round(3).to_string())
        print(json.dumps({"body_mass": result.get("body_mass")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
