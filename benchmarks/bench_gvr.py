"""GVR throughput: latent moves alone and the whole explain stage, on a trained bundle.

Target (issue 6): 100 GVRs (the paper's reading set) at the default profile in at most 3 minutes
on 2 CPU cores.

    .venv/bin/python benchmarks/bench_gvr.py --bundle study --config configs/default.yaml
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date

import numpy as np
import torch

from data_schema import Bundle
from modelling.config import load_config
from modelling.explain_bundle import build_explanations, load_decoder, load_predictor
from modelling.gvr import move


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="study")
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    cfg = load_config(args.config)
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    bundle = Bundle(args.bundle)
    decoder, predictor = load_decoder(bundle, cfg), load_predictor(bundle, "mlp-correct")
    latents = bundle.read_array("arrays/latents.npy")
    with torch.no_grad():
        pred = predictor(torch.from_numpy(latents)).numpy()
    start = latents[np.argsort(pred)[::-1][: args.n]]  # the n highest predictions: all need a move
    g = cfg.gvr
    t0 = time.perf_counter()
    path = move(start, decoder, predictor, target_log_bnp=np.log(cfg.cohort.bnp_threshold_ng_l), direction="down",
                step_size=g.step_size, max_steps=g.max_steps, similarity_weight=g.similarity_weight,
                frames=g.movie_frames)
    moves = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, info = build_explanations(cfg, bundle.root, force=True)
    stage = time.perf_counter() - t0
    print(f"{date.today()} {platform.node()} ({os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads), profile {cfg.profile}: {args.n} latent moves in {moves:.2f} s "
          f"({args.n / moves:.0f} GVRs/s; median {int(np.median(path.steps))} steps, {path.reached.mean():.0%} reached); "
          f"explain stage ({info['gvrs']} GVRs + {info['inverse']} inverse frames, PNGs, GIF and MP4): {stage:.1f} s")


if __name__ == "__main__":
    main()
