"""A user's own image model, loaded and checked, and seen from the latent space of the generative model.

The paper's GVRs explain predictors of the latent code only. A model that already exists works on
pixels: it is loaded here from an exported program (``torch.export.save``, with a dynamic batch), a
TorchScript file (``torch.jit.save``; deprecated by PyTorch, still read) or from a Python factory and
a state dict (read with ``weights_only=True``), described by an :class:`ImageModelSpec` (input size,
pixel scaling, what its output means, which output, the decision threshold), and checked before use.
:class:`LatentImageModel` then composes decoder, resizing, scaling and the model into one
differentiable map from a latent code to the model's decision score, so that
:func:`modelling.explain.gvr.move` can move codes through the real model (the direct method).

Scores: every output kind is turned into a scale on which "positive" is ``score >= threshold``
and which is linear near the threshold: log BNP as it is, BNP in ng/L by its log, a logit as it is,
a probability by its logit.
"""

from __future__ import annotations

import importlib
import io
import math
import numbers
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn import functional as F

from modelling.config import yaml_number
from modelling.explain.frozen import frozen

#: What a model's output means.
OUTPUTS = ("log_bnp", "bnp_ng_l", "logit", "probability")
#: How the model expects its pixels: 0-1, or (0-1 - mean) / sd.
SCALINGS = ("unit", "mean_sd")


class ImageModelError(ValueError):
    """A user's image model or its spec that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ImageModelSpec:
    """How to feed a user's image model and read its output.

    Attributes
    ----------
    input_size : int
        Side of the square single-channel image the model takes (radiographs are resized to it).
    scaling : {"unit", "mean_sd"}
        Pixels in 0-1, or standardised with `mean` and `sd` after scaling to 0-1.
    output : {"log_bnp", "bnp_ng_l", "logit", "probability"}
        What the selected output is.
    output_index : int
        Which column of a (n, k) output; 0 for a (n,) or (n, 1) output.
    threshold : float
        The decision threshold in the output's own units (e.g. 100 for BNP in ng/L, 0.5 for a
        probability); positive is at or above it.
    """

    input_size: int
    output: str
    threshold: float
    scaling: str = "unit"
    mean: float = 0.0
    sd: float = 1.0
    output_index: int = 0
    source: str = field(default="", compare=False)

    def __post_init__(self):
        where = self.source or "image model spec"
        # YAML gives text for 1.0e6 and accepts any value for any key: each is checked for its type here
        for name, kind in (("input_size", int), ("output_index", int), ("threshold", float), ("mean", float),
                           ("sd", float)):
            value = yaml_number(getattr(self, name))
            if isinstance(value, bool) or not isinstance(value, numbers.Real if kind is float else numbers.Integral) \
                    or not math.isfinite(value):
                raise ImageModelError(f"{where}: {name} must be {'a finite number' if kind is float else 'an integer'}"
                                      f"; got {value!r}")
            object.__setattr__(self, name, kind(value))
        for name in ("output", "scaling"):
            if not isinstance(getattr(self, name), str):
                raise ImageModelError(f"{where}: {name} must be text; got {getattr(self, name)!r}")
        if self.output not in OUTPUTS:
            raise ImageModelError(f"{where}: output must be one of {', '.join(OUTPUTS)}; got {self.output!r}")
        if self.scaling not in SCALINGS:
            raise ImageModelError(f"{where}: scaling must be one of {', '.join(SCALINGS)}; got {self.scaling!r}")
        if not 8 <= int(self.input_size) <= 2048:
            raise ImageModelError(f"{where}: input_size must be 8-2048 pixels; got {self.input_size}")
        if self.sd <= 0:
            raise ImageModelError(f"{where}: sd must be positive; got {self.sd}")
        if self.output_index < 0:
            raise ImageModelError(f"{where}: output_index must not be negative; got {self.output_index}")
        if self.output == "probability" and not 0 < self.threshold < 1:
            raise ImageModelError(f"{where}: a probability's threshold must lie strictly between 0 and 1; "
                                  f"got {self.threshold}")
        if self.output == "bnp_ng_l" and self.threshold <= 0:
            raise ImageModelError(f"{where}: a BNP threshold must be positive ng/L; got {self.threshold}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> ImageModelSpec:
        """Read a spec from YAML (the keys of this class; unknown keys are refused, naming them)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text("utf-8"))
        except FileNotFoundError:
            raise ImageModelError(f"{path}: image model spec not found; write it there (input_size, output, "
                                  "threshold) or give its path with --image-model-spec") from None
        except yaml.YAMLError as exc:
            raise ImageModelError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ImageModelError(f"{path}: expected a mapping of keys (input_size, output, threshold, ...)")
        known = {"input_size", "output", "threshold", "scaling", "mean", "sd", "output_index"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ImageModelError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        missing = sorted({"input_size", "output", "threshold"} - set(data))
        if missing:
            raise ImageModelError(f"{path}: missing key(s) {', '.join(missing)}")
        try:
            return cls(**data, source=str(path))
        except TypeError as exc:
            raise ImageModelError(f"{path}: {exc}") from None

    @property
    def score_threshold(self) -> float:
        """The threshold on the score scale (see the module)."""
        return float(to_score(torch.tensor(float(self.threshold)), self.output))


def to_score(output: torch.Tensor, kind: str) -> torch.Tensor:
    """An output on the score scale: log for BNP in ng/L, logit for a probability, else unchanged.

    >>> round(float(to_score(torch.tensor(100.0), "bnp_ng_l")), 3), float(to_score(torch.tensor(0.5), "probability"))
    (4.605, 0.0)
    """
    if kind == "bnp_ng_l":
        return torch.log(output.clamp_min(1e-12))
    if kind == "probability":
        p = output.clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)
    return output


def at_scale_end(score: np.ndarray, kind: str) -> np.ndarray:
    """Where :func:`to_score` clamped an output: a probability at or beyond 0 or 1, BNP at or below 0 ng/L.

    >>> at_scale_end(to_score(torch.tensor([-0.3, 0.2, 1.4]), "probability").numpy(), "probability").tolist()
    [True, False, True]
    """
    score = np.asarray(score, dtype=np.float64)
    if kind == "probability":
        edge = float(torch.logit(torch.tensor(1 - 1e-7)))
        return np.abs(score) >= edge - 1e-3
    if kind == "bnp_ng_l":
        return score <= float(np.log(1e-12)) + 1e-3
    return np.zeros(score.shape, dtype=bool)


def prepare(images: torch.Tensor, spec: ImageModelSpec) -> torch.Tensor:
    """Images in [-1, 1] (n, 1, h, w), as the decoder draws them, to the model's input: resized
    (bilinear, differentiable) and scaled."""
    x = (images + 1.0) / 2.0
    if x.shape[-1] != spec.input_size or x.shape[-2] != spec.input_size:
        x = F.interpolate(x, size=(spec.input_size, spec.input_size), mode="bilinear", align_corners=False)
    if spec.scaling == "mean_sd":
        x = (x - spec.mean) / spec.sd
    return x


def select_output(out: torch.Tensor, spec: ImageModelSpec, n: int) -> torch.Tensor:
    """Column `spec.output_index` of a model's output as a (n,) tensor; refuses other shapes, naming them."""
    if isinstance(out, (tuple, list)):
        raise ImageModelError(f"the image model returned a {type(out).__name__}; it must return one tensor")
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        if spec.output_index != 0:
            raise ImageModelError(f"the image model returns one output per image (shape {tuple(out.shape)}); "
                                  f"output_index {spec.output_index} does not exist")
        out = out.reshape(-1)
    elif out.ndim == 2:
        if spec.output_index >= out.shape[1]:
            raise ImageModelError(f"the image model returns {out.shape[1]} outputs per image (shape "
                                  f"{tuple(out.shape)}); output_index {spec.output_index} does not exist")
        out = out[:, spec.output_index]
    else:
        raise ImageModelError(f"the image model's output has shape {tuple(out.shape)}; expected (n,) or (n, k)")
    if out.shape[0] != n:
        raise ImageModelError(f"the image model returned {out.shape[0]} outputs for {n} images")
    return out


def scores(model: nn.Module, images: torch.Tensor, spec: ImageModelSpec) -> torch.Tensor:
    """The model's score (see the module) for images in [-1, 1] (n, 1, h, w)."""
    return to_score(select_output(model(prepare(images, spec)), spec, images.shape[0]), spec.output)


def check(model: nn.Module, spec: ImageModelSpec, *, needs_gradients: bool) -> None:
    """Run the model on batches of two, three and one blank images of the spec's size; refuse a wrong input or
    output shape, a batch size fixed at export (the stages score in batches of any size), a non-finite
    output, or (when `needs_gradients`) an output that does not depend differentiably on the pixels."""
    with frozen(model):
        _check(model, spec, needs_gradients=needs_gradients)


#: Passes over the same images that must agree before a model is taken to be a function of its input.
RANDOMNESS_PASSES = 12


def _check(model: nn.Module, spec: ImageModelSpec, *, needs_gradients: bool) -> None:
    # a program exported with the example batch of two and no dynamic batch takes two only: three shows it;
    # one, because scoring ends on a batch of any size, and a dynamic batch may have been given min=2
    for n in (2, 3, 1):
        x = torch.zeros(n, 1, spec.input_size, spec.input_size, requires_grad=needs_gradients)
        try:
            out = model(x)
        except Exception as exc:  # noqa: BLE001 - any failure here means the spec does not fit the model
            # a program that takes some batch at this size was exported without a dynamic batch; one that takes
            # none was exported for another image size or channel count
            hint = ("" if not isinstance(model, Exported) else
                    " (an exported program takes only the shapes it was exported for: export it with a dynamic "
                    f"batch, {EXPORT_HINT})" if _takes_some_batch(model, spec.input_size) else
                    " (an exported program takes only the shapes it was exported for: the spec's input_size and "
                    "one channel must be those of its example input)")
            raise ImageModelError(f"the image model does not accept input of shape ({n}, 1, {spec.input_size}, "
                                  f"{spec.input_size}) as its spec says: {type(exc).__name__}: {exc}{hint}") from None
        selected = select_output(out, spec, n)
        if not torch.isfinite(selected).all():
            raise ImageModelError("the image model's output on a blank image is not finite")
    with torch.no_grad():  # dropout left on at export (train() cannot change an exported program): not a function
        probe = torch.linspace(-1, 1, 2 * spec.input_size ** 2).reshape(2, 1, spec.input_size, spec.input_size)
        # several passes: dropout of one half on a score repeats itself between two passes one time in four,
        # between twelve one time in about a million
        first, *rest = (select_output(model(probe), spec, 2) for _ in range(RANDOMNESS_PASSES))
    if not all(torch.equal(first, other) for other in rest):
        raise ImageModelError("the image model gives different outputs for the same images (dropout or batch "
                              "statistics left in training mode?): export it from model.eval()")
    if needs_gradients:
        if not selected.requires_grad:
            raise ImageModelError("the image model's output does not depend differentiably on its input (no "
                                  "gradient); the direct method needs gradients: use the surrogate method")
        (grad,) = torch.autograd.grad(selected.sum(), x, allow_unused=True)
        if grad is None or not torch.isfinite(grad).all():
            raise ImageModelError("the image model gives no finite gradient with respect to its input; the direct "
                                  "method needs gradients: use the surrogate method")


def _takes_some_batch(model: nn.Module, size: int) -> bool:
    for n in (1, 2):
        try:
            with torch.no_grad():
                model(torch.zeros(n, 1, size, size))
            return True
        except Exception:  # noqa: BLE001 - only whether it runs matters here
            continue
    return False


#: How to save a model so that ``gvr explain --image-model`` reads it.
EXPORT_HINT = ('torch.export.save(torch.export.export(model.eval(), (torch.zeros(2, 1, SIZE, SIZE),), '
               'dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)), "model.pt2")')


class Exported(nn.Module):
    """An exported program's module (``torch.export.load(...).module()``) as an ordinary module: the
    program was exported in one mode, so ``train()`` and ``eval()`` change nothing inside it (they raise
    on the bare module). Its weights are those of ``program``."""

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> Exported:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def _kind_of_file(path: Path) -> str:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("/archive_format") for n in names) and any("/models/" in n for n in names):
            return "exported"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "torch-save"
    return "other"


def load_model_file(path: str | Path) -> nn.Module:
    """A model file, on the CPU in eval mode: an exported program (``torch.export.save``) or TorchScript
    (``torch.jit.save``); a state dict or another pickle is refused with what to do instead."""
    path = Path(path)
    if not path.is_file():
        raise ImageModelError(f"{path}: image model not found")
    kind = _kind_of_file(path)
    if kind == "exported":
        try:
            return Exported(torch.export.load(str(path)).module()).eval()
        except Exception as exc:  # noqa: BLE001
            raise ImageModelError(f"{path}: not a loadable exported program (torch.export.save): {exc}") from None
    if kind == "torchscript":
        try:
            with warnings.catch_warnings():  # PyTorch deprecates TorchScript; a user's file still reads
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # noqa: BLE001
            raise ImageModelError(f"{path}: not a loadable TorchScript file: {exc}") from None
    if kind == "torch-save":
        raise ImageModelError(f"{path}: a torch.save file, not an exported program; for a state dict give "
                              "--image-model-factory module:function with --weights FILE, or save the model "
                              f"with {EXPORT_HINT}")
    raise ImageModelError(f"{path}: not an exported program (torch.export.save), a TorchScript file "
                          "(torch.jit.save) or a state dict; a plain pickle is never loaded (it can run any code)")


def factory_source(factory: str) -> bytes:
    """The source file of the module ``module:function`` names (imported by :func:`load_factory`), as bytes: part
    of the model's identity for the stage's key. Code it imports from other files is not included."""
    import inspect
    import sys

    module = sys.modules.get(factory.partition(":")[0])
    try:
        return Path(inspect.getfile(module)).read_bytes() if module is not None else b""
    except (TypeError, OSError):  # a built-in or a module without a file: its name stands for it
        return b""


def load_factory(factory: str, weights: str | Path) -> nn.Module:
    """``module:function`` called without arguments, then the state dict `weights` loaded into it with
    ``weights_only=True`` (a pickle that holds more than tensors is refused)."""
    module_name, _, function = factory.partition(":")
    if not module_name or not function:
        raise ImageModelError(f"--image-model-factory must be module:function; got {factory!r}")
    import os
    import sys

    here = os.getcwd()  # `gvr` runs from .venv/bin, where the user's own module beside them is not found
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        build = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise ImageModelError(f"--image-model-factory {factory}: cannot import it: {exc} (a module is looked up "
                              "in the current directory and on PYTHONPATH)") from None
    finally:
        if added:
            sys.path.remove(here)
    try:
        model = build()
    except Exception as exc:  # noqa: BLE001 - the user's code: say where it failed, in one line
        raise ImageModelError(f"--image-model-factory {factory}: calling {function}() failed (it is called without "
                              f"arguments): {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ImageModelError(f"--image-model-factory {factory} returned {type(model).__name__}, not a torch module")
    weights = Path(weights)
    if not weights.is_file():
        raise ImageModelError(f"{weights}: weights not found")
    try:
        state = torch.load(io.BytesIO(weights.read_bytes()), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ImageModelError(f"{weights}: not a state dict that loads with weights_only=True (a pickle holding "
                              f"code or objects is refused): {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise ImageModelError(f"{weights}: holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        # torch's first line is only a heading; the missing, unexpected and mis-sized keys follow it
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip()) or str(exc)
        raise ImageModelError(f"{weights}: does not fit {factory}'s model: {detail}") from None
    return model.eval()


class LatentImageModel(nn.Module):
    """latent code -> decoder -> resize and scale -> image model -> score: the image model seen from the
    latent space, differentiable end to end (the direct method's predictor)."""

    def __init__(self, decoder: nn.Module, model: nn.Module, spec: ImageModelSpec):
        super().__init__()
        self.decoder, self.model, self.spec = decoder, model, spec

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.reads(self.decoder(z))

    def reads(self, picture: torch.Tensor) -> torch.Tensor:
        """The score of a picture the decoder drew (a move decodes each step once)."""
        return scores(self.model, picture.float(), self.spec)


def is_positive(score, spec: ImageModelSpec):
    """Whether scores are at or above the spec's threshold (on the score scale)."""
    return score >= spec.score_threshold - 1e-9 * max(1.0, abs(spec.score_threshold))


__all__ = ["ImageModelSpec", "ImageModelError", "LatentImageModel", "Exported", "check", "load_factory",
           "load_model_file", "prepare", "scores", "to_score", "is_positive", "OUTPUTS", "SCALINGS"]
