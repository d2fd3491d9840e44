"""Training the decoder (WGAN-GP, or with the encoder as an autoencoder) and the encoder, resumable
and deterministic for a seed.

Every iteration draws its batch and noise from generators seeded by (seed, iteration), so a run
resumed from a checkpoint at step k makes exactly the draws an uninterrupted run makes after step k,
and ends with the same weights. Working checkpoints (models and optimisers) are written atomically
every ``runtime.checkpoint_every`` iterations into a work folder.

Under ``torchrun`` (a process group is initialised) each process takes an equal slice of every
global batch and its noise, the critic, generator and encoder are wrapped in
``DistributedDataParallel`` (gloo on CPUs, NCCL on GPUs), the generator's batch norm uses global
statistics, and only rank 0 writes checkpoints: the result matches one process training on the
whole batch, up to floating-point summation order.

References: Arjovsky, Chintala & Bottou 2017 (Wasserstein GAN, arXiv:1701.07875); Gulrajani et al.
2017 (gradient penalty, arXiv:1704.00028); Tolstikhin et al. 2018 (Wasserstein auto-encoders,
arXiv:1711.01558).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelling.config import StudyConfig
from modelling.nets import checkpoints
from modelling.nets.distributed import distributed, local_rank, local_slice, wrap
from modelling.nets.networks import Critic, Encoder, Generator, to_unit
from modelling.nets.seeding import seeded
from modelling.progress import progress

log = logging.getLogger(__name__)

_STREAM_DECODER, _STREAM_ENCODER = 10, 20


def _generator(seed: int, stream: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, stream, step]).generate_state(1)[0]))


def _init(module_factory: Callable[[], nn.Module], seed: int, stream: int) -> nn.Module:
    """Build a module with weights drawn from the seed, leaving torch's global RNG as it was."""
    with seeded(int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])):
        return module_factory()


def device_for(config: StudyConfig) -> torch.device:
    """The device of runtime.device ("auto": the local CUDA device when there is one)."""
    want = config.runtime.device
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("runtime.device is 'cuda' but no CUDA device is available")
        _, world = distributed()  # torchrun gives each process of a machine its own GPU, as the group was joined
        return torch.device("cuda", local_rank() % torch.cuda.device_count() if world > 1 else torch.cuda.current_device())
    return torch.device("cpu")


def bf16_autocast(config: StudyConfig, device: torch.device) -> bool:
    """Whether networks train under bf16 autocast: ``runtime.bf16``, or with ``auto`` where `device`
    has fast bf16 kernels (:func:`fast_bf16`)."""
    want = config.runtime.bf16
    return fast_bf16(device) if want == "auto" else bool(want)


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 convolutions run at least as fast as float32 on `device`.

    On x86 CPUs oneDNN has bf16 kernels only with AVX-512 (or AMX); with AVX2 alone autocast falls back
    to reference code, about 20 times slower than float32 (benchmarks/RESULTS.md, 2026-12-02).
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # a build without oneDNN
        return False


def _autocast(config: StudyConfig, device: torch.device):
    if bf16_autocast(config, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _layout(x: torch.Tensor, config: StudyConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if config.runtime.channels_last else x


def decoder_config(config: StudyConfig) -> dict:
    # the sampler only draws codes for the summary's samples: changing it keeps the networks; transposed
    # convolutions, a constant rate and codes without noise were all there was before `upsample`,
    # `schedule`, `code_noise` and `edge_weight` existed, so a bundle trained then stays current
    decoder = {k: v for k, v in dataclasses.asdict(config.decoder).items()
               if not k.startswith("sampler")
               and (k, v) not in (("upsample", "transpose"), ("schedule", "constant"), ("code_noise", 0.0),
                                  ("edge_weight", 0.0))}
    return {"image_size": config.image_size, "decoder": decoder,
            "bf16": config.runtime.bf16, "channels_last": config.runtime.channels_last}


def _work_key(config: StudyConfig, data_key: dict | None) -> dict:
    """What a work checkpoint must share with the run that resumes it: the networks' config, the data,
    and the precision as resolved on this machine ("auto" trains in bf16 on one CPU and float32 on
    another; a run begun in one and resumed in the other would be neither)."""
    return {"data": data_key or {}, "bf16_resolved": bf16_autocast(config, device_for(config))}


def encoder_config(config: StudyConfig) -> dict:
    return decoder_config(config) | {"encoder": dataclasses.asdict(config.encoder)}


def build_generator(config: StudyConfig) -> Generator:
    d = config.decoder
    return _init(lambda: Generator(d.latent_dim, d.feature_maps, config.image_size, d.upsample), config.seed, 1)


def build_critic(config: StudyConfig) -> Critic:
    return _init(lambda: Critic(config.decoder.feature_maps, config.image_size), config.seed, 2)


def build_encoder(config: StudyConfig) -> Encoder:
    d = config.decoder
    return _init(lambda: Encoder(d.latent_dim, config.encoder.feature_maps, config.image_size), config.seed, 3)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Gulrajani et al.'s penalty: (||grad critic(x_hat)|| - 1)^2 on interpolates with weights `eps`.

    Under DDP pass the unwrapped critic: the penalty's double backward runs outside DDP's hooks,
    and its parameter gradients are reduced with the rest of the critic loss.
    """
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score = critic(mixed)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def mmd_imq(codes: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """The unbiased squared maximum mean discrepancy between two samples with the inverse multiquadratic
    kernel ``C / (C + ||x - y||^2)``, summed over the scales ``C = 2 d s`` of WAE-MMD (Tolstikhin et
    al. 2018, section 4; s from 0.1 to 10), for a N(0, I) prior in d dimensions.

    >>> g = torch.Generator().manual_seed(0)
    >>> same = mmd_imq(torch.randn(256, 8, generator=g), torch.randn(256, 8, generator=g))
    >>> shifted = mmd_imq(torch.randn(256, 8, generator=g) + 1.0, torch.randn(256, 8, generator=g))
    >>> bool(abs(same) < 0.05 < shifted)
    True
    """
    n, d = codes.shape
    off = 1.0 - torch.eye(n, device=codes.device, dtype=codes.dtype)
    dzz, dpp, dzp = (torch.cdist(a, b) ** 2 for a, b in ((codes, codes), (prior, prior), (codes, prior)))
    total = codes.new_zeros(())
    for scale in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2.0 * d * scale
        total = total + ((c / (c + dzz)) * off).sum() / (n * (n - 1)) + ((c / (c + dpp)) * off).sum() / (n * (n - 1)) \
            - 2.0 * (c / (c + dzp)).mean()
    return total


def _check_training_images(images: np.ndarray, config: StudyConfig) -> None:
    if len(images) == 0:
        raise ValueError("the unlabelled set is empty: the decoder has nothing to learn from")
    if images.shape[1:] != (config.image_size, config.image_size):
        raise ValueError(f"images are {images.shape[1:]}, the config says {config.image_size} px")


class Interrupted(RuntimeError):
    """Raised by a `stop` hook to simulate a kill in tests."""


def _resume(work: Path, kind: str, config_key: dict, seed: int, models: dict, optims: dict) -> tuple[int, dict]:
    """Load the work checkpoint of `kind` when it belongs to this run; return (step, last losses).

    A work checkpoint made with another config, seed or training data is stale: it is ignored (with
    a warning naming what differs) and training starts from step 0, overwriting it.
    """
    path = work / f"{kind}.pt"
    if not path.exists():
        return 0, {}
    try:
        state = checkpoints.load(path, kind=kind, config=config_key)
        if state["seed"] != seed:
            raise checkpoints.CheckpointError(f"{path}: made with seed {state['seed']}, this run uses {seed}")
    except checkpoints.CheckpointError as exc:
        warnings.warn(f"ignoring a stale work checkpoint, training {kind} from step 0: {exc}", StaleCheckpointWarning,
                      stacklevel=3)
        return 0, {}
    fresh = ({n: copy.deepcopy(m.state_dict()) for n, m in models.items()},
             {n: copy.deepcopy(o.state_dict()) for n, o in optims.items()})
    try:
        for name, module in models.items():
            module.load_state_dict(state["models"][name])
        for name, opt in optims.items():
            opt.load_state_dict(state["optimizers"][name])
    except (KeyError, ValueError, RuntimeError) as exc:  # networks of another shape: a checkpoint of another run
        for name, module in models.items():
            module.load_state_dict(fresh[0][name])
        for name, opt in optims.items():
            opt.load_state_dict(fresh[1][name])
        warnings.warn(f"ignoring a stale work checkpoint, training {kind} from step 0: {path}: its networks do not "
                      f"fit this run's ({type(exc).__name__}: {str(exc).splitlines()[0]})", StaleCheckpointWarning,
                      stacklevel=3)
        return 0, {}
    log.info("resuming %s from step %d (%s)", kind, state["step"], path)
    return int(state["step"]), dict(state["extra"].get("losses", {}))


class StaleCheckpointWarning(UserWarning):
    """A work checkpoint from another config, seed or data set was set aside."""


def _sample(images: np.ndarray, rng: np.random.Generator, batch: int, part: slice, device) -> torch.Tensor:
    """This process's slice of a global batch drawn with `rng` (every process draws the same)."""
    idx = np.sort(rng.integers(0, len(images), batch))[part]  # sorted: reads in file order where `images` is a memmap (the train stage holds them in memory)
    return to_unit(torch.from_numpy(np.ascontiguousarray(images[idx]))).to(device, non_blocking=True)


def _loop(kind: str, *, desc: str, iterations: int, stream: int, config: StudyConfig, work: Path, key: dict,
          models: dict[str, nn.Module], optims: dict[str, torch.optim.Optimizer],
          step: Callable[[torch.Generator, np.random.Generator], dict], postfix: Callable[[dict], dict],
          stop: Callable[[int], None] | None,
          before_step: Callable[[int], None] | None = None) -> tuple[dict, float, int]:
    """The training loop both networks share: resume, per-step random streams, progress, checkpoints.

    ``step(gen, rng)`` runs one iteration with that iteration's torch generator and numpy generator
    (both derived from the seed, the stream and the step, so a resumed run draws what an unbroken one
    would) and returns its losses; ``before_step(i)``, when given, runs first (a learning rate set from the
    step's index, so a resumed run follows the schedule too). Returns the last losses, the seconds spent and
    the steps run.
    """
    seed = config.seed
    rank, _ = distributed()
    start, losses = _resume(work, kind, key, seed, models, optims)
    for module in models.values():
        module.train()
    t0 = time.perf_counter()
    with deterministic_cudnn(), progress(total=iterations, desc=desc, unit="it", initial=start) as bar:
        for i in range(start, iterations):
            if stop is not None:
                stop(i)
            if before_step is not None:
                before_step(i)
            losses = step(_generator(seed, stream, i), np.random.default_rng([seed, stream, i]))
            bar.set_postfix(**postfix(losses))
            bar.update(1)
            if rank == 0 and ((i + 1) % config.runtime.checkpoint_every == 0 or i + 1 == iterations):
                checkpoints.save(work / f"{kind}.pt", checkpoints.payload(
                    kind, models=models, optimizers=optims, config=key, seed=seed, step=i + 1,
                    extra={"losses": losses}))
    for module in models.values():
        module.eval()
        module.cpu()
    return losses, time.perf_counter() - t0, iterations - start


@contextlib.contextmanager
def deterministic_cudnn() -> Iterator[None]:
    """cuDNN's deterministic kernels for the block, its settings as they were after: by default cuDNN may
    pick backward kernels that add in a varying order (and benchmarks kernels by timing), so two runs of
    one seed on one GPU could end with other weights. No effect on a CPU."""
    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


def _adam(module: nn.Module, learning_rate: float, betas: tuple[float, float]) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=learning_rate, betas=betas)


def train_decoder(images: np.ndarray, config: StudyConfig, work: Path, *,
                  stop: Callable[[int], None] | None = None, data_key: dict | None = None) -> tuple[Generator, dict]:
    """Train the WGAN-GP generator on `images` (n, size, size) uint8; return it (eval mode) and stats.

    Raises
    ------
    ValueError
        When there are no images or their size differs from the config's.
    """
    _check_training_images(images, config)
    d = config.decoder
    device = device_for(config)
    part = local_slice(d.batch_size)
    G, D = build_generator(config).to(device), build_critic(config).to(device)
    if config.runtime.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d = _adam(G, d.learning_rate, d.betas), _adam(D, d.learning_rate, d.betas)
    G_step, D_step = wrap(G, device), wrap(D, device)
    critic_score = D_step
    if config.runtime.compile:
        critic_score = torch.compile(D_step)  # not for the penalty: compile has no double backward

    def step(gen: torch.Generator, rng: np.random.Generator) -> dict:
        for _ in range(d.critic_steps):
            real = _layout(_sample(images, rng, d.batch_size, part, device), config)
            z = torch.randn(d.batch_size, d.latent_dim, generator=gen)[part].to(device)
            eps = torch.rand(d.batch_size, 1, 1, 1, generator=gen)[part].to(device)
            with _autocast(config, device):
                with torch.no_grad():
                    fake = G(z).float()
                w = critic_score(real).float().mean() - critic_score(fake).float().mean()
            penalty = gradient_penalty(D, real, fake, eps)  # double backward: kept in float32
            loss_d = -w + d.gradient_penalty * penalty
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        z = torch.randn(d.batch_size, d.latent_dim, generator=gen)[part].to(device)
        with _autocast(config, device):
            loss_g = -critic_score(G_step(z)).float().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"critic": loss_d.item(), "generator": loss_g.item(), "wasserstein": w.item()}

    losses, seconds, done = _loop(
        "decoder", desc="decoder (WGAN-GP)", iterations=d.iterations, stream=_STREAM_DECODER, config=config,
        work=work, key=decoder_config(config) | _work_key(config, data_key),
        models={"generator": G, "critic": D}, optims={"generator": opt_g, "critic": opt_d}, step=step,
        postfix=lambda lo: {"w": f"{lo['wasserstein']:.3f}", "g": f"{lo['generator']:.3f}"}, stop=stop)
    stats = {"critic": None, "generator": None, "wasserstein": None} | losses | {
        "objective": "wgan-gp", "iterations": d.iterations, "seconds": seconds,
        "bf16": bf16_autocast(config, device),
        "images_per_second": done * d.batch_size * (d.critic_steps + 1) / seconds if done else None}
    return G, stats


def train_autoencoder(images: np.ndarray, config: StudyConfig, work: Path, *,
                      stop: Callable[[int], None] | None = None,
                      data_key: dict | None = None) -> tuple[Generator, Encoder, dict]:
    """Train the generator and the encoder together as a Wasserstein autoencoder (WAE-MMD): the mean
    squared pixel error of decoder(encoder(x) + noise), plus ``decoder.edge_weight`` times its
    :func:`edge_loss`, plus ``decoder.mmd_weight`` times :func:`mmd_imq` of the batch's codes against as many
    N(0, I) draws; the noise is N(0, ``decoder.code_noise``^2 I), none at 0. Uses the decoder's batch size,
    learning rate, betas and iterations. Returns both networks (eval mode) and stats.

    Raises
    ------
    ValueError
        When there are no images or their size differs from the config's.
    """
    _check_training_images(images, config)
    d = config.decoder
    device = device_for(config)
    part = local_slice(d.batch_size)
    G, E = build_generator(config).to(device), build_encoder(config).to(device)
    if config.runtime.channels_last:
        G, E = G.to(memory_format=torch.channels_last), E.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([*G.parameters(), *E.parameters()], lr=d.learning_rate, betas=d.betas)
    G_step, E_step = wrap(G, device), wrap(E, device)

    def step(gen: torch.Generator, rng: np.random.Generator) -> dict:
        x = _layout(_sample(images, rng, d.batch_size, part, device), config)
        prior = torch.randn(d.batch_size, d.latent_dim, generator=gen)[part].to(device)
        # drawn only when asked, so that a run without noise draws what it drew before the option existed
        noise = (d.code_noise * torch.randn(d.batch_size, d.latent_dim, generator=gen)[part].to(device)
                 if d.code_noise else None)
        with _autocast(config, device):
            codes = E_step(x).float()
            drawn = G_step(codes if noise is None else codes + noise).float()
            image_loss = ((drawn - x) ** 2).mean()
            edge = edge_loss(drawn, x) if d.edge_weight else None
        every_code, every_prior, world = _whole_batch(codes, prior)
        mmd = mmd_imq(every_code, every_prior)  # pairwise distances: in float32
        # under DDP gradients are averaged over processes, and each process differentiates the whole
        # batch's MMD through its own codes only: times the world size, the average is the MMD's gradient
        loss = image_loss + world * d.mmd_weight * mmd
        if edge is not None:
            loss = loss + d.edge_weight * edge
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "image": image_loss.item(), "mmd": mmd.item()} | (
            {} if edge is None else {"edge": edge.item()})

    losses, seconds, done = _loop(
        "decoder", desc="decoder and encoder (autoencoder)", iterations=d.iterations, stream=_STREAM_DECODER,
        config=config, work=work,
        key=decoder_config(config) | {"encoder_feature_maps": config.encoder.feature_maps} | _work_key(config, data_key),
        models={"generator": G, "encoder": E}, optims={"autoencoder": opt}, step=step,
        postfix=lambda lo: {"image": f"{lo['image']:.4f}", "mmd": f"{lo['mmd']:.4f}"}, stop=stop,
        before_step=None if d.schedule == "constant" else lambda i: _set_rate(opt, cosine_rate(d.learning_rate, i,
                                                                                                d.iterations)))
    stats = {"loss": None, "image": None, "mmd": None} | losses | {
        "objective": "autoencoder", "iterations": d.iterations, "seconds": seconds, "schedule": d.schedule,
        "code_noise": d.code_noise, "edge_weight": d.edge_weight,
        "bf16": bf16_autocast(config, device),
        "images_per_second": done * d.batch_size / seconds if done else None}
    return G, E, stats


def edge_loss(drawn: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the differences between neighbouring pixels, across and down, of `drawn`
    against `target` (N, C, H, W): the gradient-difference loss of Mathieu et al. (ICLR 2016) with p = 2."""
    def across(t: torch.Tensor) -> torch.Tensor:
        return t[..., :, 1:] - t[..., :, :-1]

    def down(t: torch.Tensor) -> torch.Tensor:
        return t[..., 1:, :] - t[..., :-1, :]

    return ((across(drawn) - across(target)) ** 2).mean() + ((down(drawn) - down(target)) ** 2).mean()


def cosine_rate(peak: float, step: int, iterations: int) -> float:
    """The learning rate of step `step` (from 0) of `iterations`: `peak` at the first, falling along half a
    cosine to 0 after the last (Loshchilov and Hutter 2017, without restarts)."""
    return 0.5 * peak * (1.0 + math.cos(math.pi * step / iterations))


def _set_rate(opt: torch.optim.Optimizer, rate: float) -> None:
    for group in opt.param_groups:
        group["lr"] = rate


def _whole_batch(codes: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Under torchrun, every process's codes and prior draws (this process's codes keep their gradient);
    alone, the arguments as they are."""
    rank, world = distributed()
    if world == 1:
        return codes, prior, 1
    import torch.distributed as dist

    parts = [torch.empty_like(codes) for _ in range(world)]
    dist.all_gather(parts, codes.detach().contiguous())
    parts[rank] = codes
    draws = [torch.empty_like(prior) for _ in range(world)]
    dist.all_gather(draws, prior.contiguous())
    return torch.cat(parts), torch.cat(draws), world


def train_networks(images: np.ndarray, config: StudyConfig, work: Path, *,
                   stop: Callable[[int], None] | None = None,
                   data_key: dict | None = None) -> tuple[Generator, Encoder, dict]:
    """The decoder and the encoder as ``decoder.objective`` says: a WGAN-GP decoder, then the encoder
    against it; or both as an autoencoder, then ``encoder.iterations`` of the encoder's own training
    against the frozen decoder (none when 0). Returns them and ``{"decoder": ..., "encoder": ...}`` stats."""
    if config.runtime.bf16 == "auto":
        device = device_for(config)
        fast = fast_bf16(device)
        log.info("bf16 autocast %s (runtime.bf16 auto: %s has %s bf16 kernels)",
                 "on" if fast else "off", device.type, "fast" if fast else "no fast")
    if config.decoder.objective == "autoencoder":
        generator, encoder, decoder_stats = train_autoencoder(images, config, work, stop=stop, data_key=data_key)
        if config.encoder.iterations:
            encoder, encoder_stats = train_encoder(images, generator, config, work, stop=stop, data_key=data_key,
                                                   start=encoder)
        else:
            encoder_stats = {"loss": None, "iterations": 0, "seconds": 0.0, "images_per_second": None,
                             "trained_with": "the decoder"}
        return generator, encoder, {"decoder": decoder_stats, "encoder": encoder_stats}
    generator, decoder_stats = train_decoder(images, config, work, stop=stop, data_key=data_key)
    encoder, encoder_stats = train_encoder(images, generator, config, work, stop=stop, data_key=data_key)
    return generator, encoder, {"decoder": decoder_stats, "encoder": encoder_stats}


def train_encoder(images: np.ndarray, generator: Generator, config: StudyConfig, work: Path, *,
                  stop: Callable[[int], None] | None = None, data_key: dict | None = None,
                  start: Encoder | None = None) -> tuple[Encoder, dict]:
    """Train the encoder against the frozen generator: decoder(encoder(x)) ~ x and encoder(decoder(z)) ~ z.

    ``start`` continues from an encoder (an autoencoder's) instead of fresh weights."""
    e, d = config.encoder, config.decoder
    device = device_for(config)
    part = local_slice(e.batch_size)
    E = (build_encoder(config) if start is None else start).to(device)
    if config.runtime.channels_last:
        E = E.to(memory_format=torch.channels_last)
    generator = generator.to(device).eval()
    for p in generator.parameters():
        p.requires_grad_(False)
    opt = _adam(E, e.learning_rate, e.betas)
    E_step = wrap(E, device)
    mse = nn.MSELoss()

    def step(gen: torch.Generator, rng: np.random.Generator) -> dict:
        x = _layout(_sample(images, rng, e.batch_size, part, device), config)
        z = torch.randn(e.batch_size, d.latent_dim, generator=gen)[part].to(device)
        with _autocast(config, device):
            image_loss = mse(generator(E_step(x)).float(), x)
            latent_loss = mse(E_step(generator(z)).float(), z)
        loss = e.image_weight * image_loss + e.latent_weight * latent_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "image": image_loss.item(), "latent": latent_loss.item()}

    losses, seconds, done = _loop(
        "encoder", desc="encoder", iterations=e.iterations, stream=_STREAM_ENCODER, config=config, work=work,
        key=encoder_config(config) | _work_key(config, data_key), models={"encoder": E}, optims={"encoder": opt},
        step=step, postfix=lambda lo: {"image": f"{lo['image']:.4f}", "latent": f"{lo['latent']:.4f}"}, stop=stop)
    generator.cpu()
    return E, {"loss": losses.get("loss"), "iterations": e.iterations, "seconds": seconds,
               "bf16": bf16_autocast(config, device),
               "images_per_second": done * e.batch_size * 2 / seconds if done else None}


def _module_device(module: nn.Module) -> torch.device:
    """Where a module's weights live: encode and decode run there and return numpy on the CPU."""
    return next(iter(module.parameters()), torch.empty(0)).device


@torch.no_grad()
def on_images(module: nn.Module, images: np.ndarray, *, batch: int = 256) -> list[np.ndarray]:
    """`module`'s float32 outputs on uint8 images (n, size, size), a batch at a time on the module's device;
    one array per batch (none for no images)."""
    device = _module_device(module)
    return [module(to_unit(torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))).to(device)).float().cpu().numpy()
            for i in range(0, len(images), batch)]


def encode(encoder: Encoder, images: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Latent codes (n, latent_dim) float32 of uint8 images (n, size, size)."""
    encoder.eval()
    out = on_images(encoder, images, batch=batch)
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, encoder.head.out_channels), np.float32)


@torch.no_grad()
def decode(generator: Generator, latents: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """uint8 images (n, size, size) decoded from latent codes."""
    from modelling.nets.networks import to_uint8

    generator.eval()
    device = _module_device(generator)
    out = [to_uint8(generator(torch.from_numpy(np.ascontiguousarray(latents[i:i + batch])).to(device)).float().cpu()).numpy()
           for i in range(0, len(latents), batch)]
    return np.concatenate(out)
