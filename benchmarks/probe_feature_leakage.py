"""What can the generative model show of each feature, and does it show one feature as another? (issue 15 probe)

The fidelity stage decomposes each GVR's change onto the true change map of every intervention
(:func:`modelling.explain.fidelity.decompose`) and ranks the mean coefficients against the model's reliance. On the
default study the correct MLP's GVRs get an opacity coefficient near 1 while removing the opacity moves its
prediction by about 0.05 (benchmarks/RESULTS.md, session 23). A GVR is drawn by the decoder, so it can only remove a
feature as the encoder and decoder represent it. This probe measures that representation on the same radiographs:

- for each intervention f, the decoded change ``decoder(encoder(x)) - decoder(encoder(x with f intervened))`` is
  correlated with f's true change (median pixel r over the radiographs that have f: can the model show f?) and
  decomposed onto every feature's true change map, as a GVR is. Row f of the resulting matrix (mean coefficients) has
  1 on its diagonal where the representation removes f as the truth does, and off the diagonal what else it shows
  when only f is removed (leakage);
- each GVR's change is decomposed a second time, onto the decoded changes instead of the true ones: how much of each
  feature, as the representation can show it, the GVR removes. The rank agreement of those coefficients with the
  model's reliance is printed beside the stage's own (true maps). Where the second agrees and the first does not, the
  move removes what the model relies on and the representation shows it as something else;
- what each feature costs a pattern move: the squared Mahalanobis length of its code change under the covariance of
  the codes the model trained on (the move is steepest descent in that metric). Steepest descent with such a cost
  removes each feature in proportion to its fall over its cost, not to its fall: the rank agreement of the GVRs'
  coefficients with reliance per cost is printed beside the one with reliance.

With ``--moves`` it also moves the same radiographs again along each move the fidelity stage compares (gradient and
pattern, on the code and re-encoded, and the metric move) and ranks each move's mean coefficients against reliance
and against reliance over three costs of each feature's code change: its squared Euclidean length (the gradient's
metric), its squared Mahalanobis length (the pattern's) and its squared length in the decoder's pullback metric with
``gvr.metric_ridge`` (the metric move's, taken at the radiograph's code).

A diagnostic for whoever plans the next work: the manuscript's target (true maps) is unchanged.

    python benchmarks/probe_feature_leakage.py STUDY [--moves] [--json out.json]

Reads the study (its GVRs, ``tables/gvr_truth.parquet`` and the networks); writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from data_schema.tables import INTERVENTION_FEATURES  # noqa: E402
from modelling.cohort import phantom  # noqa: E402
from modelling.explain.fidelity import decompose, intervene, rank_agreement, squared_code_lengths  # noqa: E402
from modelling.nets.training import decode, encode  # noqa: E402
from modelling.stages.artifacts import load_decoder, load_encoder, load_render_params, training_codes  # noqa: E402
from modelling.stages.fidelity import representation_evidence  # noqa: E402


def feature_maps(params: dict, size: int, decoder, encoder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per radiograph and intervention, the true change and the change as encoded and decoded, (n, k, h, w) each in
    intensity 0-1 (``original - intervened``), and the change of the code (n, k, latent_dim)
    (:func:`modelling.explain.fidelity.intervene`, as the fidelity stage measures them)."""
    original, _ = phantom.render(params, size)
    seen = intervene(params, size, original, encode(encoder, original), encoder, decoder)
    return seen.maps, seen.shown, seen.moved


def probe(root) -> dict:
    """Per model, the fidelity stage's measures of what the encoder and decoder show of each feature and what it costs
    (:func:`modelling.stages.fidelity.representation_evidence`), with the target's rank agreement beside them."""
    bundle = Bundle(root, create=False)
    index = bundle.read_table("gvr_index")
    index = index[index["kind"] == "gvr"]
    truth = bundle.read_table("gvr_truth").set_index("gvr_id")
    decoder, encoder = load_decoder(bundle).eval(), load_encoder(bundle).eval()
    out = {"features": list(INTERVENTION_FEATURES), "models": {}}
    for model_id, gvrs in index.groupby("model_id", sort=True):
        params = load_render_params(bundle, gvrs["image_id"].tolist())
        size = bundle.read_image(gvrs["diseased_path"].iloc[0]).shape[-1]
        true, shown, moved = feature_maps(params, size, decoder, encoder)
        diseased = np.stack([bundle.read_image(p) for p in gvrs["diseased_path"]]).astype(np.float32)
        healthy = np.stack([bundle.read_image(p) for p in gvrs["healthy_path"]]).astype(np.float32)
        facts = truth.loc[gvrs["gvr_id"]]
        drops = {f: facts[f"drop_{f}"].to_numpy(float) for f in INTERVENTION_FEATURES}
        covariance = np.cov(training_codes(bundle, model_id).astype(np.float64), rowvar=False)
        rep = representation_evidence(true, shown, moved, covariance, drops, (diseased - healthy) / 255.0)
        features = rep["features"]
        out["models"][model_id] = rep | {"gvrs": int(len(gvrs)), "rank_agreement": rank_agreement(
            np.array([row["gvr_coefficient"] for row in features.values()]),
            np.array([row["reliance"] for row in features.values()]))}
    return out


MOVES = (("gradient", True), ("pattern", True), ("metric", True), ("gradient", False), ("pattern", False))


def moves_against_costs(root) -> dict:
    """Per model and move (:data:`MOVES`): Spearman's rho of the GVRs' mean coefficients on the true maps with reliance
    and with reliance over each cost (see the module's docstring)."""
    import torch

    from modelling.config import load_config, move_options
    from modelling.explain.gvr import aim, move, ridged_pullback_metric, scorer
    from modelling.stages.artifacts import load_predictor

    bundle = Bundle(root, create=False)
    g = load_config(str(Path(root) / "config.yaml")).gvr
    index = bundle.read_table("gvr_index")
    index = index[index["kind"] == "gvr"]
    truth = bundle.read_table("gvr_truth").set_index("gvr_id")
    codes = bundle.read_table("latents_index").set_index("image_id")
    latents = bundle.read_array(codes["latents_path"].iloc[0])
    decoder, encoder = load_decoder(bundle).eval(), load_encoder(bundle).eval()
    out = {}
    for model_id, gvrs in index.groupby("model_id", sort=True):
        params = load_render_params(bundle, gvrs["image_id"].tolist())
        size = bundle.read_image(gvrs["diseased_path"].iloc[0]).shape[-1]
        true, _, moved = feature_maps(params, size, decoder, encoder)
        n, k = true.shape[:2]
        has = np.abs(true).reshape(n, k, -1).sum(axis=2) > 0
        present = has.any(axis=0)
        facts = truth.loc[gvrs["gvr_id"]]
        drops = np.array([facts[f"drop_{f}"].mean() for f in INTERVENTION_FEATURES])
        covariance = np.cov(training_codes(bundle, model_id).astype(np.float64), rowvar=False)
        z0 = latents[codes.loc[gvrs["image_id"], "row"].to_numpy()]
        with torch.no_grad():
            metric = ridged_pullback_metric(decoder, torch.from_numpy(z0), g.metric_ridge).numpy()
        moved = moved.astype(np.float64)
        costs = {"euclidean": (moved ** 2).sum(axis=-1), "mahalanobis": squared_code_lengths(moved, covariance),
                 "pullback": np.einsum("nki,nij,nkj->nk", moved, metric, moved)}
        with np.errstate(invalid="ignore", divide="ignore"):
            per_cost = {name: drops / np.array([c[has[:, j], j].mean() if present[j] else np.nan for j in range(k)])
                        for name, c in costs.items()}
        predictor = load_predictor(bundle, model_id)
        target = np.log(gvrs["target_bnp_ng_l"].to_numpy(float))
        out[model_id] = {}
        for how, reencode in MOVES:
            options = move_options(g) | {"sparse_steps": 0, "metric_ridge": g.metric_ridge if how == "metric" else None}
            path = move(z0, decoder, scorer(predictor, reencode=reencode, encoder=encoder, decoder=decoder),
                        target_log_bnp=aim(target, "down", g.margin), direction="down", **options, frames=2,
                        covariance=covariance if how == "pattern" else None)
            change = (decode(decoder, path.start).astype(np.float32)
                      - decode(decoder, path.end).astype(np.float32)) / 255.0
            coef = decompose(change, true).mean(axis=0)
            ok = {name: present & np.isfinite(v) for name, v in per_cost.items()}
            out[model_id][how + (", re-encoded" if reencode else "")] = {
                "reached": float(path.reached.mean()), "with_reliance": rank_agreement(coef[present], drops[present]),
                **{f"with_reliance_over_{name}_cost": rank_agreement(coef[ok[name]], v[ok[name]])
                   for name, v in per_cost.items()}}
    return out


def moves_markdown(result: dict) -> str:
    lines = ["| model | move | reached | with reliance | over Euclidean cost | over Mahalanobis cost | over pullback cost |",
             "|---|---|---|---|---|---|---|"]
    for model_id, moves in result.items():
        for how, m in moves.items():
            lines.append(f"| {model_id} | {how} | {m['reached']:.2f} | {_fmt(m['with_reliance'])} | "
                         + " | ".join(_fmt(m[f"with_reliance_over_{c}_cost"])
                                      for c in ("euclidean", "mahalanobis", "pullback")) + " |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    lines = []
    for model_id, m in result["models"].items():
        names = list(m["features"])
        lines += [f"### {model_id} ({m['gvrs']} GVRs): rank agreement on true maps "
                  f"{_fmt(m['rank_agreement'])}, on shown maps {_fmt(m['rank_agreement_on_shown'])}; "
                  f"true-map coefficients against reliance per cost {_fmt(m['rank_agreement_per_cost'])}", "",
                  "| removed | shown r | " + " | ".join(names) + " | reliance | squared code length | GVR coef. "
                  "(true maps) | GVR coef. (shown maps) |", "|---" * (len(names) + 6) + "|"]
        for f in names:
            row = m["features"][f]
            lines.append(f"| {f} ({row['radiographs']}) | {_fmt(row['shown_r'])} | "
                         + " | ".join(_fmt(row["shown"][g]) for g in names)
                         + f" | {row['reliance']:.2f} | {row['squared_code_length']:.1f} | "
                           f"{row['gvr_coefficient']:.2f} | {row['gvr_coefficient_on_shown']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--moves", action="store_true", help="also rank each compared move against each cost")
    ap.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    result = probe(args.study)
    print(markdown(result))
    if args.moves:
        result["moves"] = moves_against_costs(args.study)
        print(moves_markdown(result["moves"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
