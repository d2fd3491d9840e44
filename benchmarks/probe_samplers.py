"""Do decoder samples lack two lungs because of the sampler or the decoder? (issue 15 probe)

Decodes N latent codes from each of four distributions and counts the images where
:func:`modelling.cohort.ctr.measure` cannot find two lungs (the training summary's check):

- the prior N(0, I), as ``train/summary.json`` samples;
- a Gaussian fitted to the codes of every radiograph (mean and covariance);
- a 10-component full-covariance Gaussian mixture fitted to them (the ex-post density estimate of
  Ghosh et al., ICLR 2020, "From variational to deterministic autoencoders");
- a second-stage VAE fitted to them (Dai and Wipf, ICLR 2019; :mod:`modelling.nets.code_sampler`);
- the codes themselves (reconstructions of real radiographs: what the decoder alone loses).

The fitted samplers are fitted to the codes the decoder trained on; for each, the replay ratio
(:func:`modelling.nets.code_sampler.replay_ratio`) against the codes of the test radiographs says
whether it draws new codes or replays the fitted ones.

Usage::

    python benchmarks/probe_samplers.py STUDY [--n 512]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.cohort import ctr  # noqa: E402
from modelling.cohort.pairing import generative_training_mask  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.nets.code_sampler import fit_code_sampler, replay_ratio  # noqa: E402
from modelling.nets.training import decode  # noqa: E402
from modelling.stages.artifacts import load_decoder  # noqa: E402


def sampler_steps(bundle: Bundle) -> int:
    """The steps the train stage gave the second stage, as its summary records them; else the bundle's profile's,
    else the default profile's (a bundle built from Python has no config.yaml)."""
    import json

    if "train/summary.json" in bundle.files:
        recorded = (json.loads(bundle.verify_file("train/summary.json").read_text()).get("samples") or {}).get(
            "sampler", {}).get("steps")
        if recorded:
            return int(recorded)
    config = bundle.root / "config.yaml"
    return load_config(str(config) if config.is_file() else "default").decoder.sampler_steps


def without_two_lungs(root, n: int = 512, seed: int = 20190201) -> dict:
    from sklearn.mixture import GaussianMixture

    bundle = Bundle(root, create=False)
    steps = sampler_steps(bundle)
    latents = bundle.read_array("arrays/latents.npy").astype(np.float64)
    index = bundle.read_table("latents_index").set_index("image_id")
    splits = bundle.read_table("splits")
    rows = index.loc[splits["image_id"], "row"].to_numpy()
    fitted = latents[rows[generative_training_mask(splits)]]
    held_out = latents[rows[splits["set"].to_numpy() == "test"]]
    decoder = load_decoder(bundle)
    rng = np.random.default_rng([seed, 31])
    n = min(n, len(fitted))
    draws = {
        "prior": rng.standard_normal((n, latents.shape[1])),
        "fitted_gaussian": rng.multivariate_normal(fitted.mean(axis=0), np.cov(fitted, rowvar=False), size=n),
        "mixture_10": GaussianMixture(min(10, len(fitted)), covariance_type="full", reg_covar=1e-4,
                                      random_state=seed).fit(fitted).sample(n)[0],
        "two_stage_vae": fit_code_sampler(fitted, seed=seed, steps=steps).sample(n, rng),
        "codes": fitted[rng.choice(len(fitted), n, replace=False)],
    }
    out = {"n": n, "fitted_codes": len(fitted), "held_out_codes": len(held_out), "sampler_steps": steps}
    for name, z in draws.items():
        measured = ctr.measure(decode(decoder, z.astype(np.float32)))
        out[name] = {"without_two_lungs": float(measured["ctr"].isna().mean()),
                     "replay_ratio": replay_ratio(z, fitted, held_out)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--n", type=int, default=512)
    args = ap.parse_args(argv)
    print(json.dumps(without_two_lungs(args.study, args.n), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
