"""Training throughput of the decoder (WGAN-GP) and the encoder, and the projected profile time.

Runs a few iterations of each on phantom radiographs at the profile's size and reports images/s
(the decoder counts every image through the critic and generator: batch x (critic_steps + 1) per
iteration) and the time the profile's full iteration counts would take at that speed.

    .venv/bin/python benchmarks/bench_training.py --profile default --iterations 20
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from modelling import phantom
from modelling.cohort import synthesize
from modelling.config import load_config
from modelling.training import train_decoder, train_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    cfg = load_config(args.profile)
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    cohort = synthesize(dataclasses.replace(cfg.cohort, unlabelled_patients=200, unlabelled_radiographs=256,
                                            labelled_patients=10, labelled_radiographs=10), seed=1)
    params = {k: cohort.render[k].to_numpy()[:256] for k in phantom.PARAMETERS}
    images, _ = phantom.render(params, cfg.image_size)
    k = args.iterations
    short = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, iterations=k),
                                encoder=dataclasses.replace(cfg.encoder, iterations=k),
                                runtime=dataclasses.replace(cfg.runtime, checkpoint_every=10**9))
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        generator, dstats = train_decoder(images, short, Path(work))
        dec_s = (time.perf_counter() - start) / k
        start = time.perf_counter()
        _, estats = train_encoder(images, generator, short, Path(work))
        enc_s = (time.perf_counter() - start) / k
    d, e = cfg.decoder, cfg.encoder
    projected = d.iterations * dec_s + e.iterations * enc_s
    print(f"{date.today()} {platform.node()} ({os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads): profile {args.profile}, {cfg.image_size} px, "
          f"{d.feature_maps} feature maps, bf16 {cfg.runtime.bf16}, channels_last {cfg.runtime.channels_last}; "
          f"decoder {dec_s:.3f} s/it ({d.batch_size * (d.critic_steps + 1) / dec_s:.0f} img/s), "
          f"encoder {enc_s:.3f} s/it ({e.batch_size * 2 / enc_s:.0f} img/s); "
          f"projected {d.iterations} + {e.iterations} iterations: {projected / 60:.1f} min")


if __name__ == "__main__":
    main()
