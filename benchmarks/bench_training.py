"""Training throughput of the decoder (WGAN-GP) and the encoder, memory, FLOPs and the projected profile time.

A profile whose decoder is an autoencoder (``decoder.objective: autoencoder``, the default profile's)
also gets its own step timed: decoder and encoder trained together, batch x 1 images per iteration,
and the profile's training time projected from it.

Runs a few iterations of each on phantom radiographs at the profile's size and reports images/s
(the decoder counts every image through the critic and generator: batch x (critic_steps + 1) per
iteration), the time the profile's full iteration counts would take at that speed, and on a GPU the
peak memory and an estimated FLOP utilisation: the FLOPs of one iteration counted by
torch's FLOP formulas (``torch.utils.flop_counter``) (matrix products and convolutions, forward, backward and
the gradient penalty's double backward) per second, over the device's dense bf16 peak.

``--layouts`` times only the profile's autoencoder with each ``decoder.upsample`` (transposed and
resize-convolutions), alternating in the same run, in the profile's precision and in float32.

``--switches`` repeats the measurement with each of bf16 autocast, channels_last and torch.compile
turned off in turn (compile on where the profile has it off), so their effect is measured in the
same run on the same device.

    .venv/bin/python benchmarks/bench_training.py --profile default --iterations 20
    python3 benchmarks/bench_training.py --profile paper --device cuda --switches --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from modelling.cohort import phantom
from modelling.cohort.synthetic import synthesize
from modelling.config import StudyConfig, load_config
from modelling.nets.training import train_autoencoder, train_decoder, train_encoder

#: Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's datasheets (SXM parts, without sparsity), to
#: estimate utilisation; --peak-tflops overrides. Matched against torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def _peak(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _FlopCount:
    """Counts FLOPs of matrix products and convolutions as torch's FlopCounterMode does, without its
    module tracker, whose hooks break ``autograd.grad`` (the gradient penalty)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        counter = self
        self.total = 0

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                formula = flop_registry.get(func._overloadpacket)
                if formula is not None:
                    counter.total += formula(*args, **kwargs, out_val=out)
                return out

        self.mode = Mode()

    def __enter__(self) -> _FlopCount:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.mode.__exit__(*exc)


def _flops_per_iteration(images: np.ndarray, cfg: StudyConfig, work: Path) -> tuple[float, float]:
    """FLOPs of one decoder iteration and one encoder iteration (counted, not timed)."""
    one = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, iterations=1),
                              encoder=dataclasses.replace(cfg.encoder, iterations=1),
                              runtime=dataclasses.replace(cfg.runtime, compile=False))
    with _FlopCount() as counter:
        generator, _ = train_decoder(images, one, work / "flops-decoder")
    decoder_flops = counter.total
    with _FlopCount() as counter:
        train_encoder(images, generator, one, work / "flops-encoder")
    return float(decoder_flops), float(counter.total)


def _autoencoder_seconds(images: np.ndarray, cfg: StudyConfig, iterations: int, device: torch.device,
                         work: Path) -> float:
    """Seconds per iteration of the profile's autoencoder (a 2-iteration run first, untimed)."""
    def run(n: int, name: str) -> None:
        short = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, iterations=n),
                                    runtime=dataclasses.replace(cfg.runtime, checkpoint_every=10**9))
        train_autoencoder(images, short, work / name)

    run(2, "warm-autoencoder")
    _sync(device)
    start = time.perf_counter()
    run(iterations, "autoencoder")
    _sync(device)
    return (time.perf_counter() - start) / iterations


def layouts(images: np.ndarray, cfg: StudyConfig, iterations: int, device: torch.device, *, rounds: int = 3) -> dict:
    """Seconds per iteration of the profile's autoencoder with each ``decoder.upsample``, under the profile's
    precision and, where that is bf16, under float32 too (the slower CPUs train in float32). The layouts
    alternate for `rounds` rounds and each keeps its median, so both see the same machine; the ratio
    resize / transpose is the cost of resize-convolutions."""
    from modelling.config import UPSAMPLES
    from modelling.nets.training import bf16_autocast

    precisions = [cfg.runtime.bf16] + ([False] if bf16_autocast(cfg, device) else [])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for bf16 in precisions:
            runtime = dataclasses.replace(cfg.runtime, bf16=bf16)
            label = "bf16" if bf16_autocast(dataclasses.replace(cfg, runtime=runtime), device) else "float32"
            times = {u: [] for u in UPSAMPLES}
            for r in range(rounds):
                for u in UPSAMPLES:
                    layout = dataclasses.replace(cfg, runtime=runtime, decoder=dataclasses.replace(cfg.decoder, upsample=u))
                    times[u].append(_autoencoder_seconds(images, layout, iterations, device, Path(tmp) / f"{label}-{u}-{r}"))
            median = {u: float(np.median(t)) for u, t in times.items()}
            out[label] = {"s_per_it": median, "resize_over_transpose": median["resize"] / median["transpose"]}
    return out


def measure(images: np.ndarray, cfg: StudyConfig, iterations: int, device: torch.device) -> dict:
    # the paper's WGAN-GP decoder and then the encoder, whatever the profile's decoder.objective
    short = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, objective="wgan-gp", iterations=iterations),
                                encoder=dataclasses.replace(cfg.encoder, iterations=iterations),
                                runtime=dataclasses.replace(cfg.runtime, checkpoint_every=10**9))
    d, e = cfg.decoder, cfg.encoder
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # a first short run pays for cuDNN autotuning and compilation; only the second is timed
        warm = dataclasses.replace(short, decoder=dataclasses.replace(short.decoder, iterations=2),
                                   encoder=dataclasses.replace(short.encoder, iterations=2))
        generator, _ = train_decoder(images, warm, work / "warm")
        train_encoder(images, generator, warm, work / "warm")
        _sync(device)
        start = time.perf_counter()
        generator, _ = train_decoder(images, short, work / "decoder")
        _sync(device)
        dec_s = (time.perf_counter() - start) / iterations
        start = time.perf_counter()
        train_encoder(images, generator, short, work / "encoder")
        _sync(device)
        enc_s = (time.perf_counter() - start) / iterations
        peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        dec_flops, enc_flops = _flops_per_iteration(images, short, work)
        ae_s = _autoencoder_seconds(images, cfg, iterations, device, work) if d.objective == "autoencoder" else None
    autoencoder = {} if ae_s is None else {
        "autoencoder_s_per_it": ae_s, "autoencoder_img_per_s": d.batch_size / ae_s,
        # the profile's own training: the autoencoder, then any encoder fine-tuning
        "projected_minutes_profile": (d.iterations * ae_s + e.iterations * enc_s) / 60}
    return autoencoder | {
        "bf16": cfg.runtime.bf16, "channels_last": cfg.runtime.channels_last, "compile": cfg.runtime.compile,
        "decoder_s_per_it": dec_s, "decoder_img_per_s": d.batch_size * (d.critic_steps + 1) / dec_s,
        "encoder_s_per_it": enc_s, "encoder_img_per_s": e.batch_size * 2 / enc_s,
        "decoder_tflop_per_it": dec_flops / 1e12, "encoder_tflop_per_it": enc_flops / 1e12,
        "decoder_tflop_per_s": dec_flops / dec_s / 1e12, "encoder_tflop_per_s": enc_flops / enc_s / 1e12,
        "peak_memory_gib": peak_gib,
        "projected_minutes": (d.iterations * dec_s + e.iterations * enc_s) / 60,
    }


def phantom_images(cfg: StudyConfig, n: int) -> np.ndarray:
    """`n` phantom radiographs (uint8) at the profile's size, from a small seeded cohort."""
    cohort = synthesize(dataclasses.replace(cfg.cohort, unlabelled_patients=n, unlabelled_radiographs=n,
                                            labelled_patients=10, labelled_radiographs=10), seed=1)
    params = {k: cohort.render[k].to_numpy()[:n] for k in phantom.PARAMETERS}
    return phantom.render(params, cfg.image_size)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="overrides the profile's runtime.device")
    parser.add_argument("--switches", action="store_true",
                        help="also measure with bf16, channels_last and compile each flipped")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense bf16 peak, for the utilisation estimate")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--layouts", action="store_true",
                        help="only time the profile's autoencoder with each decoder.upsample, alternating")
    args = parser.parse_args()
    cfg = load_config(args.profile)
    if args.device:
        cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, device=args.device))
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    from modelling.nets.training import device_for

    device = device_for(cfg)
    images = phantom_images(cfg, 256)

    variants = [cfg.runtime]
    if args.switches:
        for key in ("bf16", "channels_last", "compile"):
            variants.append(dataclasses.replace(cfg.runtime, **{key: not getattr(cfg.runtime, key)}))
    peak = _peak(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    d, e = cfg.decoder, cfg.encoder
    header = (f"{date.today()} {platform.node()} ({os.cpu_count()} cores, {name}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads): profile {args.profile}, {cfg.image_size} px, "
              f"{d.feature_maps} feature maps, batch {d.batch_size}, {d.critic_steps} critic steps; "
              f"{args.iterations} timed iterations")
    print(header, flush=True)
    if args.layouts:
        timed = layouts(images, cfg, args.iterations, device)
        for label, row in timed.items():
            t = row["s_per_it"]
            print(f"  {label}: autoencoder {t['transpose']:.4f} s/it with transposed convolutions, {t['resize']:.4f} "
                  f"with resize-convolutions (x{row['resize_over_transpose']:.2f}); projected {d.iterations} "
                  f"iterations: {d.iterations * t['transpose'] / 60:.1f} and {d.iterations * t['resize'] / 60:.1f} min",
                  flush=True)
        if args.json:
            args.json.write_text(json.dumps({"header": header, "device": name, "layouts": timed}, indent=1))
        return
    results = []
    for runtime in variants:
        row = measure(images, dataclasses.replace(cfg, runtime=runtime), args.iterations, device)
        if peak:
            row["decoder_utilisation"] = row["decoder_tflop_per_s"] / peak
            row["encoder_utilisation"] = row["encoder_tflop_per_s"] / peak
        results.append(row)
        memory = f", peak memory {row['peak_memory_gib']:.2f} GiB" if row["peak_memory_gib"] is not None else ""
        util = (f", est. utilisation {row['decoder_utilisation']:.1%} / {row['encoder_utilisation']:.1%} of "
                f"{peak:g} TFLOP/s bf16" if peak else "")
        print(f"  bf16 {runtime.bf16}, channels_last {runtime.channels_last}, compile {runtime.compile}: "
              f"decoder {row['decoder_s_per_it']:.4f} s/it ({row['decoder_img_per_s']:.0f} img/s, "
              f"{row['decoder_tflop_per_s']:.3g} TFLOP/s), encoder {row['encoder_s_per_it']:.4f} s/it "
              f"({row['encoder_img_per_s']:.0f} img/s, {row['encoder_tflop_per_s']:.3g} TFLOP/s){memory}{util}; "
              f"projected {d.iterations} + {e.iterations} iterations: {row['projected_minutes']:.1f} min", flush=True)
        if "autoencoder_s_per_it" in row:
            print(f"    the profile's autoencoder: {row['autoencoder_s_per_it']:.4f} s/it "
                  f"({row['autoencoder_img_per_s']:.0f} img/s); projected {d.iterations} iterations"
                  f"{f' + {e.iterations} of encoder fine-tuning' if e.iterations else ''}: "
                  f"{row['projected_minutes_profile']:.1f} min (runtime.compile does not apply to it)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "device": name, "peak_bf16_tflops": peak,
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
