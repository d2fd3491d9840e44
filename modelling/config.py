"""Study configuration: frozen dataclasses loaded from ``configs/*.yaml`` and validated on load.

Every section is a frozen dataclass whose ``__post_init__`` checks its values; :func:`load_config`
refuses unknown or mistyped keys, naming the key and the allowed ones. Profiles:

- ``tiny``: seconds, for tests;
- ``default``: the embedded default study on a 2-core CPU in minutes;
- ``paper``: the paper's sizes (128 px, 64 feature maps, paper-scale cohort), for GPUs.

Examples
--------
>>> cfg = load_config("configs/tiny.yaml")
>>> cfg.decoder.latent_dim
100
>>> replace_config(cfg, seed=7).seed
7
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
PROFILES = ("tiny", "default", "paper")
#: How the decoder is trained (:class:`DecoderConfig`).
OBJECTIVES = ("wgan-gp", "autoencoder")
#: Where decoder samples' latent codes come from (:class:`DecoderConfig`).
SAMPLERS = ("prior", "two-stage")
#: How the decoder doubles its resolution (:class:`DecoderConfig`, :class:`~modelling.nets.networks.Generator`).
UPSAMPLES = ("transpose", "resize")
#: How the autoencoder's learning rate runs over its iterations (:class:`DecoderConfig`).
SCHEDULES = ("constant", "cosine")
#: Which way a GVR moves a latent code (:class:`GvrConfig`).
MOVES = ("gradient", "pattern", "metric")


class ConfigError(ValueError):
    """A config file or value that is not valid; the message names the file and key."""


def _check(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{where}: {message}")


def _check_choice(value: str, allowed: tuple[str, ...], where: str) -> None:
    _check(value in allowed, where, f"must be one of {', '.join(map(repr, allowed))}; got {value!r}")


@dataclass(frozen=True)
class CohortConfig:
    """Sizes and rules of the cohort.

    Attributes
    ----------
    unlabelled_patients, labelled_patients : int
        Patients without and with a BNP result paired to a radiograph (paper: 41,480 and 5,232).
    unlabelled_radiographs, labelled_radiographs : int
        Radiographs of each set (paper: 96,099 and 7,390).
    test_fraction : float
        Share of labelled patients in the test split (paper: 0.2, split by patient).
    pairing_window_hours : float
        A radiograph is labelled when a BNP result of the same patient lies within this window.
    bnp_threshold_ng_l : float
        BNP above which heart failure is "predicted" (paper: 100 ng/L).
    first_year, last_year : int
        Study period (paper: 2007-2016).
    shortcut_positive_share, shortcut_negative_share : float
        Phantom only: the share of radiographs with BNP at or above ``bnp_threshold_ng_l`` (and below
        it) drawn with the shortcut marker, which BNP does not cause (shortcut benchmarks; 0 and 0 by
        default: no shortcut).
    unlabelled_severity : float
        Phantom only: the mean latent heart-failure severity of the patients without BNP tests (those
        with tests: 0.9). -0.6 gives the unlabelled set 13 % cardiomegaly against 54 % in the labelled.
    """

    unlabelled_patients: int = 400
    unlabelled_radiographs: int = 927
    labelled_patients: int = 300
    labelled_radiographs: int = 424
    test_fraction: float = 0.2
    pairing_window_hours: float = 36.0
    bnp_threshold_ng_l: float = 100.0
    first_year: int = 2007
    last_year: int = 2016
    unlabelled_severity: float = -0.6
    shortcut_positive_share: float = 0.0
    shortcut_negative_share: float = 0.0

    def __post_init__(self):
        for name in ("unlabelled_patients", "labelled_patients"):
            _check(getattr(self, name) >= 2, f"cohort.{name}", "must be at least 2")
        _check(self.unlabelled_radiographs >= self.unlabelled_patients, "cohort.unlabelled_radiographs",
               "must be at least unlabelled_patients (each patient has one or more radiographs)")
        _check(self.labelled_radiographs >= self.labelled_patients, "cohort.labelled_radiographs",
               "must be at least labelled_patients (each patient has one or more radiographs)")
        _check(0 < self.test_fraction < 1, "cohort.test_fraction", "must be strictly between 0 and 1")
        _check(self.pairing_window_hours > 0, "cohort.pairing_window_hours", "must be positive")
        _check(self.bnp_threshold_ng_l > 0, "cohort.bnp_threshold_ng_l", "must be positive")
        _check(self.first_year <= self.last_year, "cohort.last_year", "must not be before first_year")
        for name in ("shortcut_positive_share", "shortcut_negative_share"):
            _check(0 <= getattr(self, name) <= 1, f"cohort.{name}", "must lie in [0, 1]")


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder (DCGAN-layout generator) and how it is trained.

    ``objective`` ``"wgan-gp"`` is the paper's: a Wasserstein GAN with gradient penalty (Gulrajani et
    al. 2017) whose critic uses ``critic_steps`` and ``gradient_penalty``; the encoder is trained
    afterwards against the frozen decoder. ``"autoencoder"`` trains the decoder and the encoder
    together as a Wasserstein autoencoder (Tolstikhin et al. 2018, WAE-MMD): pixel reconstruction
    error plus ``mmd_weight`` times the maximum mean discrepancy between the batch's codes and draws
    from the N(0, I) prior, so that decoded prior draws are radiographs too; the critic settings are
    then unused.

    ``sampler`` says where the codes of decoder samples (``train/samples.png`` and the samples'
    statistics in ``train/summary.json``) come from: ``"prior"`` draws them from N(0, I), as the paper's
    GAN does; ``"two-stage"`` draws them through a second small VAE fitted to the codes of the
    radiographs the decoder trained on (Dai and Wipf 2019; :mod:`modelling.nets.code_sampler`), for an
    autoencoder whose codes do not fill the prior, fitted for ``sampler_steps`` Adam steps.
    ``sampler_cycles`` then decodes each draw and encodes it again that many times (1 in the default and
    tiny profiles, 0 in the paper's: not at all), since the encoder learned only real radiographs. With a
    decoder trained on noisy codes (``code_noise``), one cycle took the samples without two lungs from
    1.5-2.5 % to 0.3-0.9 % of 2,048 on three default studies, and their KID to real radiographs fell on all
    three (benchmarks/RESULTS.md, "Samples encoded again, with noise on the codes"); without the
    noise the cycles helped two studies of three. None of these changes a network: a study that only
    changes them keeps its decoder and encoder.

    ``upsample`` says how the decoder doubles its resolution: ``"transpose"`` (the DCGAN's and the
    paper's 4 x 4 transposed convolutions) or ``"resize"`` (nearest-neighbour upsampling, then a 3 x 3
    convolution; Odena et al. 2016), which draws no checkerboard of uneven overlaps.

    ``code_noise`` (autoencoder only) adds Gaussian noise of that standard deviation, in the prior's units,
    to each code before the decoder draws it in training, so that the decoder learns that a code's
    neighbourhood draws its radiograph: the fixed posterior variance of a VAE (Kingma and Welling 2014), the
    noise regulariser of Ghosh et al. (ICLR 2020). Codes between the training radiographs', where decoder
    samples lie, then decode as radiographs too. 0 trains on the codes as they are; a WGAN-GP decoder draws
    prior codes and leaves it unused, as it does ``mmd_weight``. At 0.5 (the default
    profile's) three bf16 default studies drew 1.4-2.1 % of samples without two lungs against 4.1-7.8 %
    (benchmarks/RESULTS.md, "Noise on the codes the decoder draws").

    ``edge_weight`` (autoencoder only) adds that weight times the mean squared error of the decoded
    image's differences between neighbouring pixels (across and down) against the radiograph's: a
    gradient-difference loss (Mathieu et al., ICLR 2016), since a mean squared pixel error alone draws the
    borders a diagnosis is read at (the heart's, a meniscus) blurred. 0 (every profile): none.

    ``schedule`` (autoencoder only) says how the learning rate runs over the iterations: ``"constant"``,
    or ``"cosine"``, from ``learning_rate`` down to 0 along half a cosine (Loshchilov and Hutter 2017,
    SGDR without restarts). On the default study at 2,000 iterations cosine kept the disease less than a
    constant rate: the autoencoder is still learning when the rate falls (benchmarks/RESULTS.md).
    """

    objective: str = "wgan-gp"
    latent_dim: int = 100
    feature_maps: int = 32
    critic_steps: int = 2
    batch_size: int = 64
    learning_rate: float = 5e-5
    betas: tuple[float, float] = (0.5, 0.9)
    gradient_penalty: float = 10.0
    mmd_weight: float = 1.0
    iterations: int = 300
    sampler: str = "prior"
    sampler_steps: int = 2000
    sampler_cycles: int = 0
    upsample: str = "transpose"
    schedule: str = "constant"
    code_noise: float = 0.0
    edge_weight: float = 0.0

    def __post_init__(self):
        _check_choice(self.objective, OBJECTIVES, "decoder.objective")
        _check_choice(self.sampler, SAMPLERS, "decoder.sampler")
        _check_choice(self.upsample, UPSAMPLES, "decoder.upsample")
        _check_choice(self.schedule, SCHEDULES, "decoder.schedule")
        _check(self.schedule == "constant" or self.objective == "autoencoder", "decoder.schedule",
               "applies to decoder.objective autoencoder only (the paper's WGAN-GP keeps a constant rate)")
        _check(self.mmd_weight >= 0, "decoder.mmd_weight", "must not be negative")
        _check(math.isfinite(self.code_noise), "decoder.code_noise", "must be a finite number")
        _check(self.code_noise >= 0, "decoder.code_noise", "must not be negative")
        _check(math.isfinite(self.edge_weight), "decoder.edge_weight", "must be a finite number")
        _check(self.edge_weight >= 0, "decoder.edge_weight", "must not be negative")
        _check(self.sampler_cycles >= 0, "decoder.sampler_cycles", "must not be negative")
        for name in ("latent_dim", "feature_maps", "critic_steps", "batch_size", "iterations", "sampler_steps"):
            _check(getattr(self, name) >= 1, f"decoder.{name}", "must be at least 1")
        _check(self.learning_rate > 0, "decoder.learning_rate", "must be positive")
        _check(all(0 <= b < 1 for b in self.betas), "decoder.betas", "both must lie in [0, 1)")
        _check(self.gradient_penalty >= 0, "decoder.gradient_penalty", "must not be negative")


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder, trained so that encoder(decoder(z)) ~ z and decoder(encoder(x)) ~ x.

    After a WGAN-GP decoder it is trained for ``iterations`` against the frozen decoder. After an
    autoencoder (trained with the decoder) ``iterations`` fine-tune it the same way, and may be 0.
    """

    feature_maps: int = 32
    batch_size: int = 64
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    iterations: int = 300
    latent_weight: float = 1.0
    image_weight: float = 1.0

    def __post_init__(self):
        for name in ("feature_maps", "batch_size"):
            _check(getattr(self, name) >= 1, f"encoder.{name}", "must be at least 1")
        _check(self.iterations >= 0, "encoder.iterations", "must not be negative")
        _check(self.learning_rate > 0, "encoder.learning_rate", "must be positive")
        _check(all(0 <= b < 1 for b in self.betas), "encoder.betas", "both must lie in [0, 1)")
        _check(self.latent_weight >= 0 and self.image_weight >= 0, "encoder.latent_weight",
               "loss weights must not be negative")
        _check(self.latent_weight + self.image_weight > 0, "encoder.image_weight",
               "at least one loss weight must be positive")


@dataclass(frozen=True)
class PredictorConfig:
    """Predictors of log BNP on latent codes: linear regression and an MLP, in two regimes."""

    mlp_hidden: tuple[int, ...] = (64, 32)
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 10
    overfit_epochs: int = 2000
    validation_fraction: float = 0.25
    #: Start the MLP's output bias at its training rows' mean log BNP (the intercept-only fit), not near 0
    #: (log BNP 0 is 1 ng/L): the fit then spends no epochs climbing to the mean, the hidden weights do not grow
    #: to carry the offset, and early stopping reads the fit, not the climb (benchmarks/RESULTS.md, "The MLP's
    #: start"). False: PyTorch's default initialisation, as before 2026-12-04 and in the paper profile (the paper
    #: does not say how its MLP started; scikit-learn and Keras, its era's tools, start the output near 0 too).
    mlp_bias_at_mean: bool = True
    #: Random affine copies of each training radiograph, encoded and fitted beside it (0: none; the
    #: paper's recipe). Validation and test radiographs are never copied. See modelling.nets.augment.
    augment_copies: int = 0
    augment_rotation_deg: float = 5.0
    augment_shift: float = 0.05
    augment_scale: float = 0.05

    def __post_init__(self):
        _check(all(h >= 1 for h in self.mlp_hidden), "predictors.mlp_hidden", "layer widths must be at least 1")
        _check(self.learning_rate > 0, "predictors.learning_rate", "must be positive")
        _check(self.weight_decay >= 0, "predictors.weight_decay", "must not be negative")
        for name in ("batch_size", "max_epochs", "patience", "overfit_epochs"):
            _check(getattr(self, name) >= 1, f"predictors.{name}", "must be at least 1")
        _check(0 < self.validation_fraction < 1, "predictors.validation_fraction",
               "must be strictly between 0 and 1 (paper: 0.25)")
        _check(self.augment_copies >= 0, "predictors.augment_copies", "must not be negative")
        _check(0 <= self.augment_rotation_deg <= 45, "predictors.augment_rotation_deg", "must be within 0 and 45 degrees")
        _check(0 <= self.augment_shift < 0.5, "predictors.augment_shift", "must be within 0 and 0.5 of the width")
        _check(0 <= self.augment_scale < 0.5, "predictors.augment_scale", "must be within 0 and 0.5")


@dataclass(frozen=True)
class GvrConfig:
    """Generative Visual Rationales: latent moves to below the threshold, inverse GVR targets."""

    step_size: float = 0.01
    max_steps: int = 200
    similarity_weight: float = 1.0
    inverse_targets_ng_l: tuple[float, ...] = (250.0, 1000.0, 4000.0)
    difference_threshold: float = 0.02
    movie_frames: int = 12
    #: Which radiographs get GVRs: "highest", the ones the model predicts highest (lowest for inverse
    #: GVRs), as the paper's readers saw "GVRs with predicted high BNPs"; or "random", a seeded draw
    #: among all predicted above (below) the threshold, many of them barely so, whose GVRs are faint.
    selection: str = "highest"
    #: The direction of each step: "gradient", the paper's (Adam on the loss's gradient, the
    #: predictor's filter); or "pattern", the gradient times the covariance of the codes the predictor
    #: trained on (the activation pattern of Haufe et al. 2014), in steps of ``step_size`` times the
    #: square root of the latent size in whitened units; or "metric", steepest descent in the decoded
    #: picture's distance (the gradient through the decoder's pullback metric, each step changing the
    #: picture by at most about ``step_size`` per pixel; needs ``reencode``).
    move: str = "gradient"
    #: For ``move: metric``: the ridge added to the decoder's pullback metric J^T J, as a share of its
    #: mean diagonal. Small: the picture's distance alone decides; large: the move approaches the
    #: gradient (benchmarks/RESULTS.md, "Steepest descent in the picture's distance").
    metric_ridge: float = 0.3
    #: What the move lowers: false, the predictor's output on the moved code (the paper's); true, the
    #: whole model's output on the picture the code decodes to, predictor(encoder(decoder(z))), as
    #: Latent Shift differentiates a classifier through its autoencoder (Cohen et al. 2021). The
    #: paper's moves can lower the prediction in directions the decoder does not draw: the healthy
    #: reconstruction, encoded again, is then still predicted diseased.
    reencode: bool = False
    #: How far past each target a move aims, in log BNP, so that the reconstruction as stored (8-bit)
    #: and encoded again stays across the threshold; 0 lands just past it.
    margin: float = 0.0
    #: After a move crosses its target, Adam steps that shrink the change's mean absolute size in pixels
    #: while the prediction stays past the target (the L1 proximity of counterfactual explanations,
    #: Wachter et al. 2018; :func:`modelling.explain.gvr.move`); 0, the paper's, keeps the first code past it.
    sparse_steps: int = 0

    def __post_init__(self):
        _check(self.step_size > 0, "gvr.step_size", "must be positive")
        _check(self.sparse_steps >= 0, "gvr.sparse_steps", "must not be negative")
        # measured on the default study: shrinking a move scored on the code alone finds codes the
        # predictor reads low that decode to nearly the same picture (benchmarks/RESULTS.md)
        _check(self.sparse_steps == 0 or self.reencode, "gvr.sparse_steps",
               "needs gvr.reencode: true (shrinking a move scored on the code finds changes the decoder does not draw)")
        _check_choice(self.move, MOVES, "gvr.move")
        _check(self.metric_ridge > 0, "gvr.metric_ridge", "must be positive")
        # the code's own gradient has parts the decoder barely draws, which the metric would magnify
        _check(self.move != "metric" or self.reencode, "gvr.move",
               "metric needs gvr.reencode: true (a move scored on the code has a gradient the decoder does not draw)")
        _check_choice(self.selection, ("highest", "random"), "gvr.selection")
        _check(self.max_steps >= 1, "gvr.max_steps", "must be at least 1")
        _check(self.similarity_weight >= 0, "gvr.similarity_weight", "must not be negative")
        _check(0 <= self.margin < 5, "gvr.margin", "must lie in [0, 5) (log BNP)")
        _check(all(t > 0 for t in self.inverse_targets_ng_l), "gvr.inverse_targets_ng_l", "must be positive")
        _check(0 <= self.difference_threshold < 1, "gvr.difference_threshold", "must lie in [0, 1)")
        _check(self.movie_frames >= 2, "gvr.movie_frames", "must be at least 2")


def move_options(g: GvrConfig) -> dict:
    """The settings every GVR move takes from the config, as keyword arguments of
    :func:`modelling.explain.gvr.move` (and of ``explain_codes``): one place, so that a new one reaches
    every caller."""
    return {"step_size": g.step_size, "max_steps": g.max_steps, "similarity_weight": g.similarity_weight,
            "sparse_steps": g.sparse_steps, "metric_ridge": g.metric_ridge if g.move == "metric" else None}


def gvr_key(g: GvrConfig) -> dict:
    """The GVR settings as a stage's cache key: ``sparse_steps`` and ``metric_ridge`` only when they are used,
    so that a bundle made before the options existed stays current (its moves are the same)."""
    key = dataclasses.asdict(g)
    if not key["sparse_steps"]:
        del key["sparse_steps"]
    if key["move"] != "metric":
        del key["metric_ridge"]
    return key


@dataclass(frozen=True)
class ReadersConfig:
    """The reader study: packets per model, rounds, readers and features scored."""

    per_model: int = 50
    rounds: int = 2
    readers: tuple[str, ...] = ("A", "B")
    features: tuple[str, ...] = ("cardiomegaly", "pleural_effusion", "airspace_opacity", "no_chf_features")

    def __post_init__(self):
        _check(self.per_model >= 1, "readers.per_model", "must be at least 1")
        _check(self.rounds >= 1, "readers.rounds", "must be at least 1")
        _check(len(self.readers) >= 1 and len(set(self.readers)) == len(self.readers), "readers.readers",
               "must name at least one reader, each once")
        _check(len(self.features) >= 1 and len(set(self.features)) == len(self.features), "readers.features",
               "must name at least one feature, each once")
        from data_schema.tables import READER_FEATURES  # the assessments' schema: a typo failed only there

        for name in self.features:
            close = difflib.get_close_matches(name, READER_FEATURES, n=1)
            _check(name in READER_FEATURES, "readers.features",
                   f"unknown feature {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                   + f"; known: {', '.join(READER_FEATURES)}")


@dataclass(frozen=True)
class AuditConfig:
    """The audit (``gvr audit``; :mod:`modelling.explain.audit`).

    Attributes
    ----------
    sparse_steps : int
        The audit decides, where there are masks, from the model's response to its GVRs' change region
        by region, on GVRs shortened by this many steps (:func:`modelling.explain.gvr.move`'s
        ``sparse_steps``, re-encoded): a long move takes the disease with whatever the model leans on,
        and only a change shrunk to what crosses the target shows a small shortcut by its effect
        (benchmarks/RESULTS.md, "region by region"). 0: the bundle's own GVRs, as they are.
    """

    sparse_steps: int = 300

    def __post_init__(self):
        _check(self.sparse_steps >= 0, "audit.sparse_steps", "must not be negative")


@dataclass(frozen=True)
class ImageModelConfig:
    """An end-to-end image model of log BNP (MONAI), trained on the radiographs and explained like a
    user's own model (``gvr explain --image-model``; issue 17).

    Attributes
    ----------
    run : bool
        Whether ``gvr reproduce`` trains and explains it.
    architecture : {"densenet121", "resnet18"}
    width : float
        Narrowing for a CPU (DenseNet: initial features 64 x width, growth 32 x width; ResNet: widen factor).
    epochs, batch_size, learning_rate, patience :
        Training; early stopping on a validation share of the train split.
    """

    run: bool = False
    architecture: str = "resnet18"
    width: float = 0.25
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 5

    def __post_init__(self):
        _check_choice(self.architecture, ("densenet121", "resnet18"), "image_model.architecture")
        _check(0 < self.width <= 4, "image_model.width", "must be in (0, 4]")
        for name in ("epochs", "batch_size", "patience"):
            _check(getattr(self, name) >= 1, f"image_model.{name}", "must be at least 1")
        _check(self.learning_rate > 0, "image_model.learning_rate", "must be positive")


@dataclass(frozen=True)
class ShortcutsConfig:
    """The shortcut benchmark (``gvr benchmark shortcuts``; a stage of ``gvr reproduce`` when `run`).

    Attributes
    ----------
    run : bool
        Whether ``gvr reproduce`` runs it into the bundle (``shortcuts/``, Beyond the paper).
    seeds : int
        Seeds: the study's seed and the next ones; one decoder and encoder per seed.
    strengths : list of float
        Shares of the positive radiographs that carry the shortcut marker (0-1).
    negative_share : float
        Share of the negatives that carry it, at every strength (below the largest strength).
    """

    run: bool = False
    seeds: int = 3
    strengths: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0)
    negative_share: float = 0.05

    def __post_init__(self):
        _check(self.seeds >= 1, "shortcuts.seeds", "must be at least 1")
        _check(len(self.strengths) >= 1 and all(0.0 <= s <= 1.0 for s in self.strengths), "shortcuts.strengths",
               f"must list shares from 0 to 1; got {list(self.strengths)}")
        _check(len(set(self.strengths)) == len(self.strengths), "shortcuts.strengths",
               f"must list each share once; got {list(self.strengths)}")
        largest = max(self.strengths)
        _check(0.0 <= self.negative_share < 1.0 and (largest == 0.0 or self.negative_share < largest),
               "shortcuts.negative_share", f"must lie in 0-1 and below the largest strength; got {self.negative_share}")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how networks run."""

    device: str = "auto"
    bf16: bool | str = "auto"
    channels_last: bool = True
    compile: bool = False
    num_threads: int = 0
    checkpoint_every: int = 50

    def __post_init__(self):
        _check_choice(self.device, ("auto", "cpu", "cuda"), "runtime.device")
        _check(isinstance(self.bf16, bool) or self.bf16 == "auto", "runtime.bf16",
               f"must be true, false or auto; got {self.bf16!r}")
        _check(self.num_threads >= 0, "runtime.num_threads", "must not be negative (0: all cores)")
        _check(self.checkpoint_every >= 1, "runtime.checkpoint_every", "must be at least 1")


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: one profile of ``configs/``."""

    profile: str
    seed: int
    image_size: int
    cohort: CohortConfig = field(default_factory=CohortConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictors: PredictorConfig = field(default_factory=PredictorConfig)
    gvr: GvrConfig = field(default_factory=GvrConfig)
    readers: ReadersConfig = field(default_factory=ReadersConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    shortcuts: ShortcutsConfig = field(default_factory=ShortcutsConfig)
    image_model: ImageModelConfig = field(default_factory=ImageModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self):
        _check(self.profile.strip() != "", "profile", "must not be empty")
        _check(self.seed >= 0, "seed", "must not be negative")
        # The DCGAN layout halves the image in each layer down to 4 x 4: powers of two only.
        _check(32 <= self.image_size <= 256 and self.image_size & (self.image_size - 1) == 0, "image_size",
               f"must be a power of two from 32 to 256; got {self.image_size}")
        _check(self.decoder.objective != "wgan-gp" or self.encoder.iterations >= 1, "encoder.iterations",
               "must be at least 1 after a WGAN-GP decoder (only an autoencoder trains the encoder with it)")
        # an inverse GVR moves a healthy radiograph until heart failure is predicted: past the threshold
        _check(all(t > self.cohort.bnp_threshold_ng_l for t in self.gvr.inverse_targets_ng_l),
               "gvr.inverse_targets_ng_l", f"each must be above cohort.bnp_threshold_ng_l "
               f"({self.cohort.bnp_threshold_ng_l:g} ng/L), where the inverse GVR shows heart failure; got "
               f"{list(self.gvr.inverse_targets_ng_l)}")


# ---- loading ---------------------------------------------------------------------------------------


#: A number in exponent notation, such as 1e-3, which PyYAML (YAML 1.1) reads as text unless it has a dot.
_EXPONENT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def yaml_number(value: Any) -> Any:
    """A YAML value meant as a number: text in exponent notation (``1e-3``, ``1.0e6``), which PyYAML reads
    as text unless it has both a dot and a signed exponent, becomes a float; anything else is returned as given.

    >>> yaml_number("1e-3"), yaml_number("1.0e6"), yaml_number("high"), yaml_number(5)
    (0.001, 1000000.0, 'high', 5)
    """
    if isinstance(value, str) and _EXPONENT.match(value.strip()):
        return float(value)
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against annotation `tp`; YAML lists become tuples, ints are accepted as floats."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        _check(isinstance(value, dict), where, f"must be a mapping of {tp.__name__} keys; got {value!r}")
        return _build(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        _check(isinstance(value, (list, tuple)), where, f"must be a list; got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        _check(len(value) == len(args), where, f"must have {len(args)} items; got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: must be {_type_name(tp)}; got {value!r}")
    if tp is float:
        value = yaml_number(value)
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), where,
               f"must be a number; got {value!r}")
        _check(math.isfinite(value), where, f"must be a finite number; got {value!r}")
        return float(value)
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), where, f"must be an integer; got {value!r}")
        return value
    if tp is bool:
        _check(isinstance(value, bool), where, f"must be true or false; got {value!r}")
        return value
    if tp is str:
        _check(isinstance(value, str), where, f"must be text; got {value!r}")
        return value
    raise TypeError(f"{where}: no loader for annotation {tp!r}")


def _build(cls: type, data: dict, where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"{path}: unknown key{hint}; allowed keys: {', '.join(names)}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or 'config'}: missing required key(s): {', '.join(missing)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict) -> StudyConfig:
    """Build and validate a :class:`StudyConfig` from a plain mapping."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of keys; got {type(data).__name__}")
    return _build(StudyConfig, data)


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (by default the last one wins
    silently, so a study could run with a value its author did not see)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                break  # PyYAML's own error names an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_config(path_or_profile: str | Path) -> StudyConfig:
    """Load a YAML config file, or a profile name (``tiny``, ``default``, ``paper``).

    Raises
    ------
    ConfigError
        For a missing file, invalid YAML, an unknown or mistyped key, or a value out of range;
        the message starts with the file's path.
    """
    text = str(path_or_profile)
    path = CONFIG_DIR / f"{text}.yaml" if text in PROFILES else Path(text)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; profiles: {', '.join(PROFILES)}")
    try:
        data = yaml.load(path.read_text("utf-8"), Loader=_UniqueKeys)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def replace_config(config: StudyConfig, **changes: Any) -> StudyConfig:
    """A copy with top-level fields replaced (validated again)."""
    return dataclasses.replace(config, **changes)


def config_to_dict(config: StudyConfig) -> dict:
    """Plain mapping (tuples as lists) that :func:`config_from_dict` turns back into `config`."""

    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))
