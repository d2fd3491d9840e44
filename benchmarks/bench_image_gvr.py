"""Direct GVRs through an image model: time for 100 (issue 17's target: at most 5 minutes on 2 cores).

Reads a bundle with the study's image model (the image-model stage of ``gvr reproduce``), takes the
codes of the 100 radiographs of the test split the model scores highest, and moves them through
decoder, resizing and the model until its decision changes (the direct method), as
``gvr explain --image-model`` does. Nothing is written into the bundle. Prints one JSON line: the
machine, the seconds, how many reached the threshold and how many the model confirms on the 8-bit
reconstructions.

    .venv/bin/python benchmarks/bench_image_gvr.py --bundle study --config configs/default.yaml [--n 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.config import load_config, move_options  # noqa: E402
from modelling.explain.rationale import explain_codes  # noqa: E402
from modelling.stages.artifacts import load_decoder, load_image_model, load_images  # noqa: E402
from modelling.stages.image_explain import MARGIN, model_scores  # noqa: E402


def run(bundle_dir, config, n: int) -> dict:
    bundle = Bundle(bundle_dir, create=False)
    model, spec, _ = load_image_model(bundle)
    radiographs = bundle.read_table("radiographs")
    index = bundle.read_table("latents_index").set_index("image_id")
    codes = bundle.read_array(index["latents_path"].iloc[0])[index.loc[radiographs["image_id"], "row"].to_numpy()]
    sets = bundle.read_table("splits").set_index("image_id").loc[radiographs["image_id"], "set"].to_numpy()
    test = np.flatnonzero(sets == "test")
    s = model_scores(model, load_images(bundle, radiographs.iloc[test]), spec)
    chosen = test[np.argsort(-s, kind="stable")[:n]]
    g = config.gvr
    covariance = np.cov(codes, rowvar=False) if g.move == "pattern" else None
    decoder = load_decoder(bundle, config)
    t0 = time.perf_counter()
    _, path = explain_codes(codes[chosen], decoder, model, spec, covariance=covariance, margin=MARGIN, **move_options(g))
    seconds = time.perf_counter() - t0
    return {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "profile": config.profile, "gvrs": int(len(chosen)), "seconds": round(seconds, 1),
            "started_positive": int((s[np.argsort(-s)[:n]] >= spec.score_threshold).sum()),
            "reached": int(path.reached.sum()), "valid": int(path.valid.sum()),
            "median_steps": float(np.median(path.steps)), "target_seconds": 300}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="A study bundle with the image-model stage.")
    parser.add_argument("--config", default="configs/default.yaml", help="Profile name or YAML path.")
    parser.add_argument("--n", type=int, default=100, help="GVRs to time (default 100).")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.bundle, load_config(args.config), args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
