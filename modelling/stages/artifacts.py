"""Loaders of what the stages wrote: radiographs, and networks rebuilt from their checkpoints.

Every later stage reads earlier artifacts through here, so no stage imports another. A network is
rebuilt from the config stored in its checkpoint, never from the current one: a bundle trained
with one profile loads under any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data_schema import Bundle
from modelling.config import StudyConfig
from modelling.nets import checkpoints
from modelling.nets.networks import MLP, Encoder, Generator, Linear
from modelling.nets.predictors import Standardised


def load_images(bundle: Bundle, radiographs: pd.DataFrame) -> np.ndarray:
    """All radiographs (n, size, size) uint8 in the table's order."""
    stacks = {path: np.load(bundle.verify_file(path), mmap_mode="r") for path in radiographs["image_path"].unique()}
    return np.stack([stacks[p][i] for p, i in zip(radiographs["image_path"], radiographs["image_index"])])


def load_decoder(bundle: Bundle, config: StudyConfig | None = None) -> Generator:
    """The trained decoder, rebuilt from the config stored in its checkpoint (`config` is not used
    for the architecture: a bundle trained with one profile loads under any other)."""
    state = checkpoints.load(bundle.verify_file("checkpoints/decoder.pt"), kind="decoder")
    stored = state["config"]
    d = stored["decoder"]
    # decoders trained before `upsample` existed used transposed convolutions
    g = Generator(d["latent_dim"], d["feature_maps"], stored["image_size"], d.get("upsample", "transpose"))
    g.load_state_dict(state["models"]["generator"])
    return g.eval()


def load_predictor(bundle: Bundle, model_id: str) -> torch.nn.Module:
    state = checkpoints.load(bundle.verify_file(f"checkpoints/{model_id}.pt"), kind="predictor")
    latent_dim = state["extra"]["latent_dim"]
    inner = MLP(latent_dim, tuple(state["extra"]["hidden"])) if state["config"]["predictor"] == "mlp" else Linear(latent_dim)
    model = Standardised(inner, np.zeros(latent_dim), np.ones(latent_dim))
    model.load_state_dict(state["models"]["predictor"])
    return model.eval()


def load_encoder(bundle: Bundle, config: StudyConfig | None = None) -> Encoder:
    """The trained encoder, rebuilt from the config stored in its checkpoint."""
    state = checkpoints.load(bundle.verify_file("checkpoints/encoder.pt"), kind="encoder")
    stored = state["config"]
    e = Encoder(stored["decoder"]["latent_dim"], stored["encoder"]["feature_maps"], stored["image_size"])
    e.load_state_dict(state["models"]["encoder"])
    return e.eval()


def load_render_params(bundle: Bundle, image_ids) -> dict[str, np.ndarray]:
    """The phantom's render parameters of `image_ids`, in that order, as :func:`modelling.cohort.phantom.render`
    takes them (a phantom bundle only)."""
    table = bundle.read_table("phantom_render").set_index("image_id")
    missing = [i for i in image_ids if i not in table.index]
    if missing:
        raise KeyError(f"{bundle.root}: no render parameters for radiograph(s) {missing[:5]} (a real-data bundle "
                       "has none; the phantom's are in tables/phantom_render.parquet)")
    rows = table.loc[list(image_ids)]
    return {name: rows[name].to_numpy() for name in rows.columns}


def training_covariance(bundle: Bundle, model_id: str) -> np.ndarray:
    """The covariance of the latent codes `model_id` trained on (for ``gvr.move: pattern``)."""
    return np.cov(training_codes(bundle, model_id).astype(np.float64), rowvar=False)


def training_codes(bundle: Bundle, model_id: str) -> np.ndarray:
    """The latent codes `model_id` trained on (n, latent_dim); at least 2."""
    predictions = bundle.read_table("predictions")
    index = bundle.read_table("latents_index").set_index("image_id")
    ids = predictions.loc[(predictions["model_id"] == model_id) & (predictions["role"] == "train"), "image_id"]
    if len(ids) < 2:
        raise ValueError(f"model {model_id!r} has {len(ids)} training radiograph(s) in {bundle.root}/tables/"
                         "predictions.parquet; pattern moves need the covariance of at least 2")
    latents = bundle.read_array(index["latents_path"].iloc[0])
    return latents[index.loc[ids, "row"].to_numpy()]


#: The study's own image model (the image-model stage) and its spec, as a user's model would come.
IMAGE_MODEL, IMAGE_MODEL_SPEC = "image_model/model.pt2", "image_model/model.yaml"
#: Decoded samples (the training stage's) as uint8 stacks, one per sampler named as ``decoder.sampler``
#: names it: the configured one's (the samples ``train/ctr_real_vs_generated.csv`` measures) and, when
#: that is not the prior, as many N(0, I) draws under "prior".
DECODER_SAMPLES = "train/decoder_samples.npz"


def load_image_model(bundle: Bundle):
    """The bundle's image model (an exported program), its spec and the model file's bytes."""
    import tempfile

    from modelling.explain.image_model import ImageModelSpec, load_model_file

    data = bundle.verify_file(IMAGE_MODEL).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:  # the loader reads files; the bundle's is checked above
        path = Path(tmp) / Path(IMAGE_MODEL).name
        path.write_bytes(data)
        model = load_model_file(path)
    spec = ImageModelSpec.from_yaml(bundle.verify_file(IMAGE_MODEL_SPEC))
    return model, spec, data


def load_masks(bundle: Bundle, table: pd.DataFrame, image_ids) -> dict[str, dict[str, np.ndarray]]:
    """Per radiograph id, its masks by feature (``table``: phantom_truth, or radiograph_masks for a user's
    segmentations, which may cover some of `image_ids` only: the others are left out)."""
    from modelling.cohort.phantom import unpack_masks

    indexed = table.set_index("image_id")
    rows = indexed.loc[[i for i in image_ids if i in indexed.index]]
    cache: dict[str, np.ndarray] = {}
    out = {}
    for image_id, row in rows.iterrows():
        if row["mask_path"] not in cache:
            cache[row["mask_path"]] = bundle.read_array(row["mask_path"])["bits"]
        out[image_id] = unpack_masks(cache[row["mask_path"]][int(row["mask_index"])])
    return out
