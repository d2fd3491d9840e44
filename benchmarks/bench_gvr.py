"""GVR throughput: latent moves alone and the whole explain stage, on a copy of a trained bundle.

Target (issue 6): 100 GVRs (the paper's reading set) at the default profile in at most 3 minutes
on 2 CPU cores. It also times the movies of the moved GVRs as the explain stage encodes them
(:func:`modelling.explain.movies.movies`) against imageio's GIF and MP4 one after the other, the
reference, in the same run, and checks that both give the same bytes.

    .venv/bin/python benchmarks/bench_gvr.py --bundle study --config configs/default.yaml
    .venv/bin/python benchmarks/bench_gvr.py --config tiny        # builds its own tiny bundle

The benchmark never writes into ``--bundle``: it copies the bundle into a temporary folder and
reruns the explain stage there, and it checks that the source's manifest is byte-identical
afterwards. Without ``--bundle`` it builds a bundle of its own (cohort and training) first.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from data_schema import Bundle
from modelling.stages.cohort import build_cohort
from modelling.config import load_config, move_options
from modelling.stages.artifacts import load_decoder, load_encoder, load_predictor, training_covariance
from modelling.stages.explain import build_explanations
from modelling.explain.gvr import aim, move, scorer
from modelling.explain.movies import movies
from modelling.nets.training import decode
from modelling.stages.explain import movie_frame_sets
from modelling.stages.train import build_training


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "manifest.json").read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None,
                        help="A trained bundle to copy (left untouched); default: build one from --config.")
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    cfg = load_config(args.config)
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    with tempfile.TemporaryDirectory(prefix="bench-gvr-") as tmp:
        work = Path(tmp) / "bundle"
        before = None
        if args.bundle is not None:
            if not (args.bundle / "manifest.json").is_file():
                sys.exit(f"error: no study bundle at {args.bundle}: run `make reproduce` first, or omit --bundle")
            before = _digest(args.bundle)
            shutil.copytree(args.bundle, work, ignore=shutil.ignore_patterns("work"))  # training scratch
        else:
            build_cohort(cfg, work)
            build_training(cfg, work)
        bundle = Bundle(work)
        decoder, predictor = load_decoder(bundle, cfg), load_predictor(bundle, "mlp-correct")
        latents = bundle.read_array("arrays/latents.npy")
        with torch.no_grad():
            pred = predictor(torch.from_numpy(latents)).numpy()
        start = latents[np.argsort(pred)[::-1][: args.n]]  # the n highest predictions: all need a move
        g = cfg.gvr
        t0 = time.perf_counter()
        # the moves as the explain stage makes them: gvr.move, gvr.reencode and gvr.margin
        covariance = training_covariance(bundle, "mlp-correct") if g.move == "pattern" else None
        score = scorer(predictor, reencode=g.reencode, encoder=load_encoder(bundle, cfg) if g.reencode else None,
                       decoder=decoder)
        path = move(start, decoder, score, target_log_bnp=aim(np.log(cfg.cohort.bnp_threshold_ng_l), "down", g.margin),
                    direction="down", **move_options(g), frames=g.movie_frames, covariance=covariance)
        moves = time.perf_counter() - t0
        encode = _movies(path, decoder, score, cfg)
        t0 = time.perf_counter()
        _, info = build_explanations(cfg, work, force=True)
        stage = time.perf_counter() - t0
    if before is not None and _digest(args.bundle) != before:
        sys.exit(f"error: {args.bundle}/manifest.json changed during the benchmark")
    n = len(start)
    print(f"{date.today()} {platform.node()} ({os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads), profile {cfg.profile}: {n} latent moves in {moves:.2f} s "
          f"({n / moves:.0f} GVRs/s; median {int(np.median(path.steps))} steps, {path.reached.mean():.0%} reached); "
          f"explain stage ({info['gvrs']} GVRs + {info['inverse']} inverse frames, PNGs, GIF and MP4): {stage:.1f} s"
          + ("" if before is None else f"; {args.bundle} left untouched"))
    print(f"movies of {encode['n']} GVRs (GIF and MP4): imageio one after the other {encode['reference']:.2f} s, "
          f"as the explain stage encodes them {encode['stage']:.2f} s ({encode['reference'] / encode['stage']:.2f}x), "
          f"the same bytes: {encode['same']}")
    if not encode["same"]:
        sys.exit("error: the explain stage's movies differ from imageio's")


def _movies(path, decoder, score, cfg) -> dict:
    """Seconds to encode the moved GVRs' movies: imageio's GIF and MP4 one GVR after another (the reference)
    against :func:`modelling.explain.movies.movies`, and whether the bytes agree."""
    import imageio.v3 as iio

    sets = list(movie_frame_sets(path, decode(decoder, path.start), decoder, score,
                                 threshold=cfg.gvr.difference_threshold))
    t0 = time.perf_counter()
    reference = [(iio.imwrite("<bytes>", f, extension=".gif", duration=150, loop=0),
                  iio.imwrite("<bytes>", f, extension=".mp4", fps=6, codec="libx264", macro_block_size=16))
                 for f in sets]
    t1 = time.perf_counter()
    encoded = list(movies(sets))
    t2 = time.perf_counter()
    return {"n": len(sets), "reference": t1 - t0, "stage": t2 - t1, "same": encoded == reference}


if __name__ == "__main__":
    main()
