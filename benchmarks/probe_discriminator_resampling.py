"""Does resampling decoder samples by a classifier's density ratio give them two lungs? (issue 15 probe)

About 4 % of the two-stage sampler's decoded draws have no two separable lungs (target 2 %), against
under 1 % of real radiographs. Every change to the sampler or the decoder tried so far left that share
where it was, or lowered it only by narrowing the samples toward the mean (lower temperatures, which
KID says are less like radiographs). This probe corrects the samples after the fact instead, by the
likelihood-free importance weights of Grover et al. (NeurIPS 2019, "Bias correction of learned
generative models using likelihood-free importance weighting"): a classifier is trained to tell real
radiographs of the decoder's training set from decoded draws; with balanced classes its odds
``exp(logit)`` estimate the density ratio ``p_data / p_model``; drawing from a larger pool of decoded
draws in proportion to those weights (sampling-importance-resampling) moves the samples toward the data.
The rejection sampler of Azadi et al. (ICLR 2019, "Discriminator rejection sampling") uses the same
ratio. The classifier never sees the lung count. A second correction needs no classifier: the same draws
decoded, encoded and decoded once more, since the encoder learned only real radiographs and their decoded
codes have two lungs about as often as the radiographs do.

For each way of drawing: the share without two lungs (:func:`modelling.cohort.ctr.measure`, the
training summary's check), KID against real radiographs on the study's image model's penultimate
features (:func:`modelling.explain.realism.kid`, as ``image_fidelity`` scores samples; another set of
real radiographs gives the floor), the replay ratio of the codes
(:func:`modelling.nets.code_sampler.replay_ratio`) and how many distinct draws were kept; and the median
distance of the codes from the fitted codes' mean (narrowed samples crowd toward it).

    python benchmarks/probe_discriminator_resampling.py STUDY [--pool 8192] [--n 2048] [--steps 1500] [--cycles 1]

``--steps 0`` trains no classifier (the re-encoded rows only).

Reads the study; writes nothing. KID needs the study's image model: without it, KID is None.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data_schema import Bundle  # noqa: E402
from modelling.cohort import ctr  # noqa: E402
from modelling.cohort.pairing import generative_training_mask  # noqa: E402
from modelling.config import load_config  # noqa: E402
from modelling.explain.realism import kid, penultimate_features  # noqa: E402
from modelling.nets.code_sampler import fit_code_sampler, replay_ratio  # noqa: E402
from modelling.nets.networks import to_unit  # noqa: E402
from modelling.nets.training import build_critic, decode, encode  # noqa: E402
from modelling.stages.artifacts import IMAGE_MODEL, load_decoder, load_encoder, load_image_model, load_images  # noqa: E402
from modelling.stages.image_fidelity import eager  # noqa: E402


def fit_classifier(config, real: np.ndarray, fake: np.ndarray, *, steps: int, batch: int = 64,
                   learning_rate: float = 2e-4, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """A real-against-decoded classifier (the WGAN-GP critic's architecture, trained with the logistic loss),
    kept at the step with the lowest held-out loss (a fifth of each set held out, checked every 100 steps)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 5])
    net = build_critic(config).train()
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate, betas=(0.5, 0.9))
    cut_r, cut_f = len(real) * 4 // 5, len(fake) * 4 // 5
    real_train, real_val = real[:cut_r], real[cut_r:]
    fake_train, fake_val = fake[:cut_f], fake[cut_f:]
    batch = min(batch, len(real_train), len(fake_train))  # a small study has fewer radiographs than a batch

    def held_out_loss() -> tuple[float, float]:
        with torch.no_grad():
            lr_ = logits(net, real_val)
            lf = logits(net, fake_val)
        loss = 0.5 * (F.softplus(-torch.from_numpy(lr_)).mean() + F.softplus(torch.from_numpy(lf)).mean())
        accuracy = 0.5 * ((lr_ > 0).mean() + (lf < 0).mean())
        return float(loss), float(accuracy)

    best, best_state, history = float("inf"), None, []
    for step in range(steps + 1):
        if step % 100 == 0:
            net.eval()
            loss, accuracy = held_out_loss()
            net.train()
            history.append({"step": step, "held_out_loss": loss, "held_out_accuracy": accuracy})
            if loss < best:
                best, best_state = loss, {k: v.clone() for k, v in net.state_dict().items()}
        if step == steps:
            break
        x = to_unit(torch.from_numpy(real_train[rng.choice(len(real_train), batch, replace=False)]))
        y = to_unit(torch.from_numpy(fake_train[rng.choice(len(fake_train), batch, replace=False)]))
        loss = 0.5 * (F.softplus(-net(x).flatten()).mean() + F.softplus(net(y).flatten()).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.load_state_dict(best_state)
    return net.eval(), {"history": history, "best_held_out_loss": best}


@torch.no_grad()
def logits(net: torch.nn.Module, images: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([net(to_unit(torch.from_numpy(images[i:i + batch]))).flatten().double().numpy()
                           for i in range(0, len(images), batch)])


def resample(logit: np.ndarray, n: int, rng: np.random.Generator, *, replace: bool) -> np.ndarray:
    """Indices of `n` draws in proportion to the estimated density ratio exp(logit) (self-normalised)."""
    # without replacement every draw needs a weight above zero, however far below the others its logit is
    w = np.maximum(np.exp(logit - logit.max()), 0.0 if replace else np.finfo(float).tiny)
    return rng.choice(len(logit), n, replace=replace, p=w / w.sum())


def probe(root, *, config=None, pool: int = 8192, n: int = 2048, steps: int = 1500, cycles: int = 1,
          seed: int = 0) -> dict:
    """Each way of drawing, scored (see the module's docstring). `steps` 0: no classifier, and the pool is the
    `n` draws; `cycles`: how many times the draws are decoded, encoded and decoded again (a row for each)."""
    bundle = Bundle(root, create=False)
    config = config or load_config(str(Path(root) / "config.yaml"))
    radiographs = bundle.read_table("radiographs")
    splits = bundle.read_table("splits").set_index("image_id").loc[radiographs["image_id"]].reset_index()
    generative = generative_training_mask(splits)
    latents = bundle.read_array("arrays/latents.npy")
    index = bundle.read_table("latents_index").set_index("image_id")
    codes = latents[index.loc[radiographs["image_id"], "row"].to_numpy()]
    test = splits["set"].to_numpy() == "test"
    images = load_images(bundle, radiographs)
    decoder, encoder = load_decoder(bundle).eval(), load_encoder(bundle).eval()
    # KID needs the study's image model; a bundle built without it is scored by the lung count alone
    model = eager(config, load_image_model(bundle)[0]) if IMAGE_MODEL in bundle.files else None
    rng = np.random.default_rng([seed, 3])
    start = time.perf_counter()
    fitted = fit_code_sampler(codes[generative], seed=config.seed, steps=config.decoder.sampler_steps)
    real = images[generative]
    order = rng.permutation(len(real))
    # the classifier's real radiographs, KID's reference, and other real radiographs of the same set (KID's floor)
    third = (len(real) - len(real) * 3 // 7) // 2
    real_for_classifier = real[order[: len(real) * 3 // 7]]
    real_reference = real[order[len(real) * 3 // 7:][:third]]
    floor_images = real[order[len(real) * 3 // 7:][third:2 * third]]
    reference = None if model is None else penultimate_features(model, real_reference)
    centre = codes[generative].mean(axis=0)

    def scored(name: str, chosen_codes: np.ndarray, chosen_images: np.ndarray, distinct: int) -> dict:
        k = None if model is None else kid(reference, penultimate_features(model, chosen_images), subsets=100,
                                           subset_size=500, seed=config.seed)
        return {"draws": name, "without_two_lungs": float(ctr.measure(chosen_images)["ctr"].isna().mean()),
                "kid_x1000": None if k is None else {"kid": k["kid"] * 1000, "sd": k["sd"] * 1000},
                "replay_ratio": replay_ratio(chosen_codes, codes[generative], codes[test]), "distinct": int(distinct),
                "median_code_distance_from_the_mean": float(np.median(np.linalg.norm(chosen_codes - centre, axis=1)))}

    out, result = [], {"settings": {"pool": pool if steps else n, "n": n, "classifier_steps": steps, "cycles": cycles,
                                    "seed": seed}}
    if steps:
        # the classifier trains on one pool of draws and the resampling draws from another
        train_codes = fitted.sample(len(real_for_classifier), rng).astype(np.float32)
        net, result["classifier"] = fit_classifier(config, real_for_classifier, decode(decoder, train_codes),
                                                   steps=steps, seed=seed)
    pool_codes = fitted.sample(pool if steps else n, rng).astype(np.float32)
    pool_images = decode(decoder, pool_codes)
    drawn = rng.choice(len(pool_codes), n, replace=False)
    out.append(scored("two-stage, as drawn", pool_codes[drawn], pool_images[drawn], n))
    if steps:
        pool_logit = logits(net, pool_images)
        lungless = ctr.measure(pool_images)["ctr"].isna().to_numpy()
        for replace in (True, False):
            chosen = resample(pool_logit, n, rng, replace=replace)
            out.append(scored("resampled by the ratio, " + ("with replacement (SIR)" if replace else
                                                            "without replacement"),
                              pool_codes[chosen], pool_images[chosen], len(np.unique(chosen))))
        q = np.quantile(pool_logit, [0.1, 0.9])
        result["pool_without_two_lungs"] = float(lungless.mean())
        result["without_two_lungs_by_logit"] = {
            f"lowest tenth (logit < {q[0]:.2f})": float(lungless[pool_logit < q[0]].mean()),
            "middle": float(lungless[(pool_logit >= q[0]) & (pool_logit <= q[1])].mean()),
            f"highest tenth (logit > {q[1]:.2f})": float(lungless[pool_logit > q[1]].mean())}
    # no classifier: the same draws decoded, encoded and decoded again (the encoder learned real radiographs only)
    again = pool_images[drawn]
    for cycle in range(1, cycles + 1):
        again_codes = encode(encoder, again)
        again = decode(decoder, again_codes)
        out.append(scored(f"two-stage, as drawn, encoded and decoded again {cycle} time(s)", again_codes, again, n))
    result["seconds"] = time.perf_counter() - start
    if model is not None:
        floor = kid(reference, penultimate_features(model, floor_images), subsets=100, subset_size=500,
                    seed=config.seed)
        result["real_floor_kid_x1000"] = {"kid": floor["kid"] * 1000, "sd": floor["sd"] * 1000}
    result["fitted_codes_median_distance_from_the_mean"] = float(np.median(np.linalg.norm(codes[generative] - centre,
                                                                                         axis=1)))
    return result | {"draws": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--pool", type=int, default=8192)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--cycles", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(probe(args.study, pool=args.pool, n=args.n, steps=args.steps, cycles=args.cycles,
                           seed=args.seed), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
