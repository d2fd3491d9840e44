"""Can a cardiothoracic-ratio comparison tell a smaller heart from a drained effusion? (issue 15 probe)

The fidelity stage counts a GVR's heart as smaller when :func:`modelling.cohort.ctr.measure` reads a
lower ratio on the healthy reconstruction than on the diseased one. On the phantom's own
counterfactuals that reading is often wrong, because the measure takes the heart's width only between
aerated lung. This probe compares, for each radiograph with cardiomegaly in a phantom cohort, the
original with three of its counterfactuals (same noise): disease-free, only the heart made normal, and
only the effusion removed. Two comparisons:

- ``single``: the ratio measured on each image by itself (the fidelity stage's);
- ``same_rows_<trim>``: cardiac and thoracic width over only the rows where both images show both
  lungs, leaving out the lowest ``trim`` of them. A reader compares two films at the same level; fluid
  at a lung base hides the heart border there (the silhouette sign: Felson B, Felson H, Radiology
  1950;55:363-374).

A comparison that reads the heart says "lower" for disease-free and heart-only near always and for
effusion-only near never. Each share is given for all radiographs with cardiomegaly and split by
whether the true effusion is large (:data:`modelling.cohort.effusion.LARGE`).

Usage::

    python benchmarks/probe_ctr_rows.py [--patients 300] [--size 64] [--trims 0 1 2 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelling.cohort import ctr, effusion, phantom  # noqa: E402
from modelling.cohort.counterfactual import disease_removed, render_intervened  # noqa: E402
from modelling.cohort.synthetic import synthesize  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.explain.fidelity import lower_share  # noqa: E402


def same_rows(before: np.ndarray, after: np.ndarray, trim: int = 0) -> np.ndarray:
    """Per pair, the cardiothoracic ratio of each image over the rows where both images show both
    lungs, less the lowest `trim` of those rows; shape (n, 2), NaN where it cannot be measured."""
    out = np.full((len(before), 2), np.nan)
    for i in range(len(before)):
        found = [ctr.segment_lungs(image) for image in (before[i], after[i])]
        if any(isinstance(f, str) for f in found):
            continue
        rows = np.logical_and.reduce([lung.any(axis=1) for pair in found for lung in pair])
        kept = np.flatnonzero(rows)[: max(int(rows.sum()) - trim, 0)]
        if kept.size == 0:
            continue
        for j, (right, left) in enumerate(found):
            cardiac, thoracic = (widths[kept].max() for widths in ctr.row_widths(right, left))
            if cardiac > 0:
                out[i, j] = cardiac / thoracic
    return out


def _share(before: np.ndarray, after: np.ndarray, where: np.ndarray) -> dict:
    lower, n = lower_share(before, after, where)
    return {"lower": lower, "n": n}


def compare(params: dict[str, np.ndarray], size: int, trims=(0, 1, 2, 3)) -> dict:
    """The shares of :mod:`this probe <probe_ctr_rows>` for radiographs rendered from `params`."""
    original, _ = phantom.render(params, size)
    others = {"disease_free": phantom.render(disease_removed(params), size)[0],
              "heart_only": render_intervened(params, "heart", size),
              "effusion_only": render_intervened(params, "effusion", size)}
    cardiomegaly = np.asarray(params["cardiothoracic_ratio"]) > 0.5
    large = effusion.large(params["effusion_right"], params["effusion_left"])
    effused = (np.asarray(params["effusion_right"]) + np.asarray(params["effusion_left"])) > 0
    strata = {"all": cardiomegaly, "no_large_effusion": cardiomegaly & ~large, "large_effusion": cardiomegaly & large}
    single0 = ctr.measure(original)["ctr"].to_numpy()
    out: dict = {"radiographs": int(len(original)), "size": size}
    for name, other in others.items():
        where = {k: v & effused for k, v in strata.items()} if name == "effusion_only" else strata
        pairs = {"single": (single0, ctr.measure(other)["ctr"].to_numpy())}
        for trim in trims:
            both = same_rows(original, other, trim)
            pairs[f"same_rows_{trim}"] = (both[:, 0], both[:, 1])
        out[name] = {how: {stratum: _share(b, a, w) for stratum, w in where.items()} for how, (b, a) in pairs.items()}
    return out


def cohort_params(patients: int, profile: str = "default") -> dict[str, np.ndarray]:
    """Render parameters of a phantom cohort of the profile's kind, with `patients` labelled patients."""
    cfg = load_config(profile)
    cohort_cfg = dataclasses.replace(cfg.cohort, labelled_patients=patients, labelled_radiographs=int(patients * 1.4),
                                     unlabelled_patients=max(patients * 2 // 3, 1),
                                     unlabelled_radiographs=int(patients * 1.5))
    cohort = synthesize(cohort_cfg, seed=cfg.seed)
    return {k: cohort.render[k].to_numpy() for k in phantom.PARAMETERS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--trims", type=int, nargs="+", default=[0, 1, 2, 3])
    args = ap.parse_args(argv)
    print(json.dumps(compare(cohort_params(args.patients), args.size, args.trims), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
