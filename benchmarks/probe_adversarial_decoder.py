"""Does a critic on the decoder's samples teach it to draw two lungs? (issue 15 probe)

Decoder samples without two separable lungs stay at about 3-6 % of two-stage draws (target 2 %) while
the decoded codes of real radiographs have them 98-99 % of the time: the decoder is only ever asked to
draw the codes of real radiographs. This probe fine-tunes a copy of a study's decoder with the
reconstruction loss it trained with, ``mean (decoder(encoder(x)) - x)^2`` (the encoder frozen, so the
codes, predictors and GVRs keep their meaning), plus `weight` times a Wasserstein critic's score on
decoded samples from the study's sampler (WGAN-GP, Gulrajani et al. 2017; the critic of
:func:`modelling.nets.training.build_critic`, warmed up alone first). The decoder then also learns from
codes that are not any radiograph's, which is what the adversarial autoencoder literature does to close
the prior's holes (Makhzani et al. 2016; the VAE-GAN of Larsen et al. 2016 in image space).

With ``--code-noise s`` the reconstruction is asked of codes moved by Gaussian noise of s times each
code dimension's standard deviation (over the codes the decoder trained on), so the decoder learns that a
code's neighbourhood draws its radiograph: the fixed-variance posterior of a VAE (Kingma and Welling 2014)
and the noise regulariser of Ghosh et al. (ICLR 2020, "From variational to deterministic autoencoders").
``--weight 0`` leaves the critic out.

Before and after: samples without two lungs (two-stage draws and N(0, I) draws), held-out PSNR, and
the median correlation of decoded with true disease change (the training summary's ``disease_kept``).

    python benchmarks/probe_adversarial_decoder.py STUDY [--iterations 400] [--weight 1e-4] [--n 2048]
        [--code-noise 0.0]

Reads the study; writes nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.cohort import ctr  # noqa: E402
from modelling.cohort.pairing import generative_training_mask  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.nets.code_sampler import fit_code_sampler  # noqa: E402
from modelling.nets.networks import to_unit  # noqa: E402
from modelling.nets.training import build_critic, decode, encode, gradient_penalty  # noqa: E402
from modelling.stages.artifacts import load_decoder, load_encoder, load_images  # noqa: E402
from modelling.stages.train import _disease_kept  # noqa: E402
from probe_samplers import sampler_steps  # noqa: E402


def _measure(bundle, config, decoder, encoder, sampler, held_out: np.ndarray, held_out_ids, n: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, 7])
    drawn = ctr.measure(decode(decoder, sampler(n, rng).astype(np.float32)))["ctr"].isna().mean()
    prior = ctr.measure(decode(decoder, rng.standard_normal((n, decoder.latent_dim)).astype(np.float32)))
    mse = float(np.mean(((decode(decoder, encode(encoder, held_out)).astype(np.float64) - held_out) / 255) ** 2))
    kept = _disease_kept(bundle, config, decoder, encoder, held_out_ids)  # the training summary's own measure
    return {"sampler_without_two_lungs": float(drawn), "prior_without_two_lungs": float(prior["ctr"].isna().mean()),
            "held_out_psnr_db": float(10 * np.log10(1 / mse)),
            "disease_kept_median_r": None if kept is None else kept["median_r"]}


def fine_tune(root, *, config=None, iterations: int = 400, warmup: int = 100, critic_steps: int = 2,
              weight: float = 1e-4, n: int = 2048, batch: int = 64, learning_rate: float = 2e-4,
              code_noise: float = 0.0, seed: int = 0) -> dict:
    """Before and after the fine-tune (see the module's docstring), with its settings and seconds."""
    bundle = Bundle(root, create=False)
    config = config or load_config(str(Path(root) / "config.yaml") if (Path(root) / "config.yaml").exists()
                                   else "default")
    torch.manual_seed(seed)
    radiographs = bundle.read_table("radiographs")
    splits = bundle.read_table("splits").set_index("image_id").loc[radiographs["image_id"]].reset_index()
    generative = generative_training_mask(splits)
    images = load_images(bundle, radiographs)
    latents = bundle.read_array("arrays/latents.npy")
    decoder, encoder = load_decoder(bundle).eval(), load_encoder(bundle).eval()
    test = np.flatnonzero(splits["set"].to_numpy() == "test")
    test_ids = radiographs["image_id"].to_numpy()[test]
    # fitted as the train stage fitted it (the steps its summary records), so `before` is the bundle's own sampler
    steps = sampler_steps(bundle)
    fitted = fit_code_sampler(latents[generative], seed=config.seed, steps=steps)
    before = _measure(bundle, config, decoder, encoder, fitted.sample, images[test], test_ids, n, seed)
    tuned, critic = copy.deepcopy(decoder).train(), build_critic(config).train()
    for p in tuned.parameters():
        p.requires_grad_(True)
    for p in encoder.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(tuned.parameters(), lr=learning_rate, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
    rng = np.random.default_rng([seed, 11])
    train = images[generative]
    start = time.perf_counter()

    def real():
        return to_unit(torch.from_numpy(train[rng.choice(len(train), min(batch, len(train)), replace=False)]))

    def drawn(k):
        return torch.from_numpy(fitted.sample(k, rng).astype(np.float32))

    code_sd = torch.from_numpy(latents[generative].std(axis=0).astype(np.float32))
    if weight == 0:
        warmup, critic_steps = 0, 0
    for step in range(warmup + iterations):
        for _ in range(critic_steps if step >= warmup else 1):
            x = real()
            with torch.no_grad():
                fake = tuned(drawn(len(x)))
            loss_d = -(critic(x).mean() - critic(fake).mean()) + 10 * gradient_penalty(
                critic, x, fake, torch.rand(len(x), 1, 1, 1))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        if step < warmup:
            continue
        x = real()
        with torch.no_grad():
            codes = encoder(x).float()
            codes = codes + code_noise * code_sd * torch.randn_like(codes)
        loss = ((tuned(codes) - x) ** 2).mean()
        if weight:
            loss = loss - weight * critic(tuned(drawn(len(x)))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    seconds = time.perf_counter() - start
    after = _measure(bundle, config, tuned.eval(), encoder, fitted.sample, images[test], test_ids, n, seed)
    return {"settings": {"iterations": iterations, "warmup": warmup, "critic_steps": critic_steps,
                         "weight": weight, "draws": n, "batch": batch, "learning_rate": learning_rate,
                         "code_noise": code_noise, "sampler_steps": steps},
            "before": before, "after": after, "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--config", default=None, help="profile or YAML (default: the study's config.yaml)")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--critic-steps", type=int, default=2)
    ap.add_argument("--weight", type=float, default=1e-4)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--code-noise", type=float, default=0.0,
                    help="noise on the codes, in standard deviations of each code dimension")
    args = ap.parse_args(argv)
    result = fine_tune(args.study, config=load_config(args.config) if args.config else None,
                       iterations=args.iterations, warmup=args.warmup, critic_steps=args.critic_steps,
                       weight=args.weight, n=args.n, code_noise=args.code_noise)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
