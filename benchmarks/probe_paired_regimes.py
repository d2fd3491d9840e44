"""Would the regime target be met if both models explained the same radiographs? (issue 15)

The fidelity stage judges the regime target on each model's own GVR radiographs (its highest predicted, chosen
apart: on the default study the two sets share about 5 of 50), so the two models' coefficients on a feature are
compared between different patients (Mann-Whitney U), and the patients' own spread of body mass, markers and
projection is part of the noise. This probe moves both models' codes from the same radiographs (the union of
the two GVR sets, where both models predict above the threshold), with the bundle's own move, decomposes each
GVR onto its radiograph's true feature maps as the stage does, and compares the two models radiograph by
radiograph (Wilcoxon signed-rank of the paired differences) beside the unpaired test on the same GVRs (Mann-Whitney
U), each as a P for a shift the way the means differ (:func:`directed_p`). Both
counts are reported: the coefficients (what the target counts) and the contribution shares (coefficient times
the model's own fall on that radiograph, over the parts' absolute sum; ``probe_contribution_shares.py``).
Judged as :mod:`analysis.regimes` judges (which reliance differs, the same way, P < 0.01). A diagnostic for
whoever plans the next work: the stage's target is unchanged.

    python benchmarks/probe_paired_regimes.py BUNDLE [BUNDLE ...]

Reads only; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import mannwhitneyu, wilcoxon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.regimes import RegimeDifference, regime_target  # noqa: E402
from data_schema import Bundle  # noqa: E402
from data_schema.tables import INTERVENTION_FEATURES  # noqa: E402
from probe_contribution_shares import contribution_shares, judged  # noqa: E402
from modelling.config import load_config, move_options  # noqa: E402
from modelling.explain.fidelity import decompose, intervene  # noqa: E402
from modelling.explain.gvr import aim, move, scorer  # noqa: E402
from modelling.nets.training import decode, encode  # noqa: E402
from modelling.stages.artifacts import (  # noqa: E402
    load_decoder,
    load_encoder,
    load_images,
    load_predictor,
    load_render_params,
    training_covariance,
)
from modelling.stages.explain import predict_log_bnp  # noqa: E402
from modelling.stages.fidelity import NON_DISEASE, intervention_falls  # noqa: E402

MODELS = ("mlp-correct", "mlp-overfitted")


def shares(coef: np.ndarray, drops: np.ndarray) -> np.ndarray:
    """(n, k): each feature's part of the fall, as ``probe_contribution_shares.py`` counts it (coefficient times
    that radiograph's fall, over the parts' absolute sum; NaN where the parts are all 0)."""
    table = pd.DataFrame({**{f"coef_{f}": coef[:, k] for k, f in enumerate(INTERVENTION_FEATURES)},
                          **{f"drop_{f}": drops[:, k] for k, f in enumerate(INTERVENTION_FEATURES)}})
    return contribution_shares(table).to_numpy()


def directed_p(a: np.ndarray, b: np.ndarray, *, paired: bool) -> float | None:
    """Twice the one-sided P that `b` lies above `a` (or below it, whichever way their means differ), capped at 1:
    a two-sided P that counts only a shift in the direction the means show, so a test whose ranks point the other
    way (skewed values, many zeros) cannot count as "the same way". Paired: Wilcoxon signed-rank of ``b - a``
    (radiographs where they are equal drop out, scipy's default); else Mann-Whitney U. None where the two are
    equal throughout."""
    if not len(a) or np.all(a == b):
        return None
    side = "greater" if b.mean() > a.mean() else "less"
    test = wilcoxon(b, a, alternative=side) if paired else mannwhitneyu(b, a, alternative=side)
    return float(min(1.0, 2 * test.pvalue))


def compare(values: dict[str, np.ndarray], drops: dict[str, np.ndarray], *, features=NON_DISEASE,
            paired: bool = True) -> list[RegimeDifference]:
    """Per feature (columns of INTERVENTION_FEATURES): the models' mean fall and mean value over the radiographs
    where both values are defined, with :func:`directed_p` of the two (paired or not)."""
    rows = []
    for f in features:
        k = INTERVENTION_FEATURES.index(f)
        a, b = values[MODELS[0]][:, k], values[MODELS[1]][:, k]
        keep = np.isfinite(a) & np.isfinite(b)
        a, b = a[keep], b[keep]
        nan = float("nan")
        rows.append(RegimeDifference(f, float(drops[MODELS[0]][keep, k].mean()) if keep.any() else nan,
                                     float(drops[MODELS[1]][keep, k].mean()) if keep.any() else nan,
                                     float(a.mean()) if len(a) else nan, float(b.mean()) if len(b) else nan,
                                     directed_p(a, b, paired=paired)))
    return rows


def paired_gvrs(root: Path) -> tuple[list[str], dict, dict, dict]:
    """Both models' GVRs of the same radiographs: (their image ids, coefficients, drops, shares), the last three
    dicts by model of (n, k) arrays in INTERVENTION_FEATURES order."""
    bundle = Bundle(root, create=False)
    config = load_config(str(root / "config.yaml"))
    g, threshold = config.gvr, config.cohort.bnp_threshold_ng_l
    index = bundle.read_table("gvr_index")
    gvrs = index[index["kind"] == "gvr"]
    latents_index = bundle.read_table("latents_index").set_index("image_id")
    latents = bundle.read_array(latents_index["latents_path"].iloc[0])
    decoder, encoder = load_decoder(bundle, config), load_encoder(bundle, config)
    predictors = {m: load_predictor(bundle, m) for m in MODELS}
    scores = {m: scorer(p, reencode=g.reencode, encoder=encoder, decoder=decoder) for m, p in predictors.items()}
    union = sorted(set(gvrs["image_id"]))
    z0 = latents[latents_index.loc[union, "row"].to_numpy()]
    with torch.no_grad():
        start = {m: predict_log_bnp(s, z0) for m, s in scores.items()}
    both = np.all([start[m] > np.log(threshold) for m in MODELS], axis=0)
    images = [i for i, b in zip(union, both) if b]
    z0 = z0[both]
    radiographs = bundle.read_table("radiographs")
    position = {image_id: i for i, image_id in enumerate(radiographs["image_id"])}
    pixels = load_images(bundle, radiographs)[[position[i] for i in images]]
    params = load_render_params(bundle, images)
    size = pixels.shape[-1]
    code = encode(encoder, pixels)
    seen = intervene(params, size, pixels, code, encoder, decoder)
    target = aim(np.full(len(images), np.log(threshold)), "down", g.margin)
    coef, drops, share = {}, {}, {}
    for m in MODELS:
        _, falls = intervention_falls(predictors[m], code, seen)
        drops[m] = np.stack([falls[f] for f in INTERVENTION_FEATURES], axis=1)
        covariance = training_covariance(bundle, m) if g.move == "pattern" else None
        path = move(z0, decoder, scores[m], target_log_bnp=target, direction="down", **move_options(g), frames=2,
                    covariance=covariance)
        change = (decode(decoder, path.start).astype(np.float32) - decode(decoder, path.end).astype(np.float32)) / 255
        coef[m] = decompose(change, seen.maps)
        share[m] = shares(coef[m], drops[m])
    return images, coef, drops, share


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for root in args.bundles:
        bundle = Bundle(root, create=False)
        if "tables/phantom_render.parquet" not in bundle.files or "tables/gvr_index.parquet" not in bundle.files:
            print(f"{root}: not a phantom bundle with GVRs (run `gvr explain` first)", file=sys.stderr)
            return 2
        images, coef, drops, share = paired_gvrs(root)
        differing = regime_target(compare(coef, drops))["differing"]
        print(f"{root}: {len(images)} radiographs explained by both models; reliance differs on {', '.join(differing) or 'none'}")
        table = []
        for label, values in (("coefficients", coef), ("shares", share)):
            for paired in (True, False):
                rows = compare(values, drops, paired=paired)
                print(f"  {label}, {'paired' if paired else 'unpaired'}: {judged(regime_target(rows))}")
                table += [{"count": label, "test": "paired" if paired else "unpaired", "feature": r.feature,
                           "reliance_correct": r.reliance_correct, "reliance_overfitted": r.reliance_overfitted,
                           "correct": r.coefficient_correct, "overfitted": r.coefficient_overfitted, "p": r.p,
                           "differs": r.differs, "same_way": r.same_way} for r in rows]
        print(pd.DataFrame(table).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
