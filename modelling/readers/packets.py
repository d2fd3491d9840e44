"""Blinded reading packets: the GVRs that human readers score, with the key kept apart.

The paper's readers "were independently given 100 GVRs with predicted high BNPs and were blinded
to the originating model and all other information about each GVR. Fifty GVRs were from the
correctly trained model and 50 were from the overfitted model", and "each GVR appeared in a random
order in two rounds" (Seah et al. 2019, Qualitative Assessment of GVRs). A packet reproduces that:

- GVRs of kind ``gvr`` whose radiograph was predicted above the threshold (the study's BNP threshold,
  the paper's 100 ng/L by default) are drawn, ``per_model`` from
  each model (all of a model's GVRs when it has fewer; :class:`PacketSummary` says so);
- each GVR gets a random blinded id, not derived from its gvr id, after the drawn GVRs are shuffled
  (neither an id nor its image files' order, times or inode numbers follow the model);
- its overlay and original PNGs are re-encoded from their pixels only (no text, time or other
  metadata chunks) as ``images/<blinded_id>-overlay.png`` and ``images/<blinded_id>-original.png``;
- each reader sees them in an order of their own, drawn independently for each round, kept in
  ``order/<reader>-round<k>.json``;
- ``packet.json`` lists the features, readers, rounds and blinded ids, nothing else;
- the key (``reading_key`` schema: blinded id to gvr, model, regime, image and patient) is written
  to a CSV *outside* the packet, so the packet can be handed over whole.

Layout::

    packet/
      packet.json
      images/<blinded_id>-overlay.png
      images/<blinded_id>-original.png
      order/<reader>-round<k>.json      {"reader": "A", "round": 1, "ids": [...]}

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> _ = write_packet_json(root / "p", features=("cardiomegaly",), readers=("A",), rounds=1, ids=("K7Q2M4",))
>>> load_packet(root / "p").ids
('K7Q2M4',)
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_schema import TableValidationError, validate_frame
from data_schema.io import atomic_write_bytes, atomic_write_text
from data_schema.tables import FEATURE_PATTERN, ID_PATTERN

log = logging.getLogger(__name__)

PACKET_FORMAT = "gvr-chf-packet/1"
PACKET_JSON = "packet.json"
IMAGE_DIR = "images"
ORDER_DIR = "order"
IMAGE_ROLES = ("overlay", "original")
DEFAULT_FEATURES = ("cardiomegaly", "pleural_effusion", "airspace_opacity", "no_chf_features")
DEFAULT_READERS = ("A", "B")
#: Radiographs above this predicted BNP count as "predicted high" (the paper's CHF cut-off).
THRESHOLD_NG_L = 100.0
# Blinded ids: no vowels (no accidental words), no 0/O/1/I confusion.
_ID_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ23456789"
_ID_LENGTH = 6


class PacketError(ValueError):
    """A packet that cannot be made or read as asked; the message says what to change."""


@dataclass(frozen=True)
class Packet:
    """What a packet holds (read from its ``packet.json``).

    Attributes
    ----------
    root : Path
        The packet directory.
    features : tuple of str
        Features each reader scores for every GVR.
    readers : tuple of str
        Reader identifiers.
    rounds : int
        Reading rounds (each GVR is read once per round).
    ids : tuple of str
        Blinded ids, sorted.
    """

    root: Path
    features: tuple[str, ...]
    readers: tuple[str, ...]
    rounds: int
    ids: tuple[str, ...]

    def image_path(self, blinded_id: str, role: str) -> Path:
        """The PNG of `role` (``overlay`` or ``original``) for `blinded_id`."""
        if role not in IMAGE_ROLES:
            raise PacketError(f"role must be one of {IMAGE_ROLES}, got {role!r}")
        if blinded_id not in self.ids:
            raise PacketError(f"{self.root}: no blinded id {blinded_id!r} in this packet")
        return self.root / IMAGE_DIR / f"{blinded_id}-{role}.png"

    def order_path(self, reader: str, round: int) -> Path:
        return self.root / ORDER_DIR / f"{reader}-round{round}.json"

    def order(self, reader: str, round: int) -> tuple[str, ...]:
        """The order in which `reader` reads the GVRs in `round`.

        Raises
        ------
        PacketError
            For a reader or round the packet does not have, or an order file that does not list
            exactly the packet's ids.
        """
        self.check_reader_round(reader, round)
        path = self.order_path(reader, round)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PacketError(f"{path}: cannot read the reading order: {exc}") from exc
        ids = tuple(data.get("ids", ()))
        if sorted(ids) != list(self.ids) or data.get("reader") != reader or data.get("round") != round:
            raise PacketError(f"{path}: not an order of this packet's {len(self.ids)} ids for reader "
                              f"{reader!r}, round {round}; remake the packet")
        return ids

    def check_reader_round(self, reader: str, round: int) -> None:
        """Raise :class:`PacketError` unless `reader` and `round` belong to the packet."""
        if reader not in self.readers:
            raise PacketError(f"reader must be one of {list(self.readers)}, got {reader!r}")
        if isinstance(round, bool) or not isinstance(round, (int, np.integer)) or not 1 <= round <= self.rounds:
            raise PacketError(f"round must be an integer from 1 to {self.rounds}, got {round!r}")


@dataclass(frozen=True)
class PacketSummary:
    """What :func:`draw_packet` wrote.

    Attributes
    ----------
    packet : Packet
        The packet as written.
    key_path : Path
        The key CSV (outside the packet).
    drawn : dict
        GVRs drawn per model id.
    available : dict
        Eligible GVRs (kind ``gvr``, predicted above the threshold) per model id.
    short_models : tuple of str
        Models with fewer eligible GVRs than ``per_model``: all of theirs were taken.
    """

    packet: Packet
    key_path: Path
    drawn: dict = field(default_factory=dict)
    available: dict = field(default_factory=dict)
    short_models: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """One row per model: model_id, available, drawn, short."""
        return pd.DataFrame({
            "model_id": list(self.available),
            "available": [self.available[m] for m in self.available],
            "drawn": [self.drawn.get(m, 0) for m in self.available],
            "short": [m in self.short_models for m in self.available],
        })


def _check_names(values: Sequence[str], what: str, pattern: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise PacketError(f"{what} must be a list of names, got the string {values!r}")
    values = tuple(values)
    if not values:
        raise PacketError(f"{what} must not be empty")
    bad = [v for v in values if not isinstance(v, str) or not re.match(pattern, v)]
    if bad:
        raise PacketError(f"{what} must match {pattern} (used in file names); got {bad}")
    if len(set(values)) != len(values):
        raise PacketError(f"{what} must be distinct, got {list(values)}")
    return values


def _check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise PacketError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def write_packet_json(root: str | Path, *, features: Sequence[str], readers: Sequence[str], rounds: int,
                      ids: Sequence[str]) -> Path:
    """Write ``packet.json`` (format, features, readers, rounds, sorted ids) atomically."""
    path = Path(root) / PACKET_JSON
    body = {"format": PACKET_FORMAT, "features": list(features), "readers": list(readers),
            "rounds": int(rounds), "ids": sorted(ids)}
    atomic_write_text(path, json.dumps(body, indent=1) + "\n")
    return path


def load_packet(packet_dir: str | Path) -> Packet:
    """Read and check a packet's ``packet.json``.

    Raises
    ------
    PacketError
        When the directory has no readable ``packet.json`` or it is not a packet of this format.
    """
    root = Path(packet_dir)
    path = root / PACKET_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PacketError(f"{root}: no {PACKET_JSON}; is this a reading packet (`gvr readers packet`)?") from exc
    except (OSError, ValueError) as exc:
        raise PacketError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != PACKET_FORMAT:
        raise PacketError(f"{path}: not a {PACKET_FORMAT} packet")
    try:
        features = _check_names(data["features"], f"{path}: features", FEATURE_PATTERN)
        readers = _check_names(data["readers"], f"{path}: readers", ID_PATTERN)
        ids = _check_names(data["ids"], f"{path}: ids", ID_PATTERN)
        rounds = _check_positive_int(data["rounds"], f"{path}: rounds")
    except KeyError as exc:
        raise PacketError(f"{path}: missing field {exc.args[0]!r}") from exc
    return Packet(root=root, features=features, readers=readers, rounds=rounds, ids=tuple(sorted(ids)))


def png_pixels_only(image: np.ndarray) -> bytes:
    """Encode `image` as a PNG with the pixel data only (IHDR, IDAT, IEND; no text or time chunks)."""
    from PIL import Image

    array = np.ascontiguousarray(image)
    if array.dtype == np.uint16 and array.ndim == 2:
        pil = Image.fromarray(array.astype(np.uint16), mode="I;16")
    elif array.dtype == np.uint8:
        pil = Image.fromarray(array)
    else:
        raise PacketError(f"images must be uint8 (or 2-D uint16), got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")  # no pnginfo, dpi, icc or exif: Pillow writes none of them
    return buffer.getvalue()


def _blinded_ids(n: int, rng: np.random.Generator) -> list[str]:
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        letters = rng.integers(0, len(_ID_ALPHABET), size=_ID_LENGTH)
        candidate = "".join(_ID_ALPHABET[i] for i in letters)
        if candidate not in ids:
            ids.add(candidate)
            out.append(candidate)
    return out


def _inside(path: Path, directory: Path) -> bool:
    path, directory = path.resolve(), directory.resolve()
    return path == directory or directory in path.parents


def draw_packet(
    gvr_index: pd.DataFrame,
    radiographs: pd.DataFrame,
    read_image: Callable[[str], np.ndarray],
    out_dir: str | Path,
    *,
    source: str = "the study",
    key_path: str | Path,
    per_model: int = 50,
    rounds: int = 2,
    readers: Sequence[str] = DEFAULT_READERS,
    features: Sequence[str] = DEFAULT_FEATURES,
    threshold_ng_l: float = THRESHOLD_NG_L,
    rng: np.random.Generator | int | Sequence[int] | None,
) -> PacketSummary:
    """Draw GVRs from each model into a blinded reading packet and write its key apart.

    :func:`modelling.stages.packet.make_packet` calls this with a bundle's tables and images.

    Parameters
    ----------
    gvr_index, radiographs : pandas.DataFrame
        The study's ``gvr_index`` and ``radiographs`` tables.
    read_image : callable
        Reads one of the index's image paths (``original_path``, ...) as pixels.
    out_dir : path-like
        The packet directory to create; it must not exist or be empty.
    key_path : path-like
        The key CSV (``reading_key`` schema) to write; it must lie outside `out_dir` and not exist.
    per_model : int
        GVRs drawn from each model (the paper: 50); a model with fewer gives all of its own, with
        a warning and a record in :attr:`PacketSummary.short_models`.
    rounds : int
        Reading rounds (the paper: 2).
    readers : sequence of str
        Reader ids (used in file names).
    features : sequence of str
        Features scored per GVR (the paper's Table 2 columns by default).
    threshold_ng_l : float
        Only GVRs whose radiograph was predicted above this BNP are eligible ("predicted high").
    rng : numpy.random.Generator or int or sequence of int or None
        Randomness of the draw, the blinded ids and the reading orders. Whoever knows a seed and the
        study can recompute the key, so a seed is a secret like the key; None draws fresh entropy
        (``gvr readers packet`` without ``--seed``).

    source : str
        What the tables came from, for messages (a bundle's path).

    Returns
    -------
    PacketSummary
        The packet, the key path, and per-model counts (available, drawn, short models).

    Raises
    ------
    PacketError
        For a bad option, an output that exists or a key inside the packet, or a bundle with no
        eligible GVR.
    TableValidationError
        When the key breaks its schema (for example one GVR image shared by two patients).
    """
    per_model = _check_positive_int(per_model, "per_model")
    rounds = _check_positive_int(rounds, "rounds")
    readers = _check_names(readers, "readers", ID_PATTERN)
    features = _check_names(features, "features", FEATURE_PATTERN)
    out_dir, key_path = Path(out_dir), Path(key_path)
    if _inside(key_path, out_dir):
        raise PacketError(f"the key file {key_path} lies inside the packet {out_dir}; the key must be kept "
                          "outside what readers receive: give a path elsewhere")
    if key_path.suffix.lower() != ".csv":
        raise PacketError(f"the key file must end in .csv, got {key_path}")
    if key_path.exists():
        raise PacketError(f"the key file {key_path} exists; remove it or give another path (a packet's key is "
                          "never overwritten)")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise PacketError(f"the packet folder {out_dir} exists and is not an empty directory; give a new one")
    rng = np.random.default_rng(rng)

    index = gvr_index
    patients = radiographs.set_index("image_id")["patient_id"]
    eligible = index[(index["kind"] == "gvr") & (index["start_pred_ng_l"] > threshold_ng_l)]
    eligible = eligible.sort_values(["model_id", "gvr_id"], kind="stable")
    if eligible.empty:
        raise PacketError(f"{source}: no GVR of kind 'gvr' predicted above {threshold_ng_l:g} ng/L; "
                          f"run `gvr explain{'' if source == 'the study' else ' ' + source}` first")

    available, drawn, short, chosen = {}, {}, [], []
    for model_id, rows in eligible.groupby("model_id", sort=True):
        available[model_id] = len(rows)
        if len(rows) <= per_model:
            if len(rows) < per_model:
                short.append(model_id)
            pick = rows
        else:
            pick = rows.iloc[np.sort(rng.choice(len(rows), size=per_model, replace=False))]
        drawn[model_id] = len(pick)
        chosen.append(pick)
    if short:
        warnings.warn(f"fewer than per_model={per_model} eligible GVRs for "
                      + ", ".join(f"{m} ({available[m]})" for m in short) + "; all of theirs were taken",
                      stacklevel=2)
    # shuffled before the ids are given, so neither an id nor its place in the packet follows the model
    chosen = pd.concat(chosen, ignore_index=True)
    chosen = chosen.iloc[rng.permutation(len(chosen))].reset_index(drop=True)
    ids = _blinded_ids(len(chosen), rng)

    key = pd.DataFrame({
        "blinded_id": ids,
        "gvr_id": chosen["gvr_id"].to_numpy(),
        "model_id": chosen["model_id"].to_numpy(),
        "regime": chosen["regime"].to_numpy(),
        "image_id": chosen["image_id"].to_numpy(),
        "patient_id": chosen["image_id"].map(patients).to_numpy(),
    })
    missing = key.loc[key["patient_id"].isna(), "image_id"].tolist()
    if missing:
        raise PacketError(f"{source}: radiographs {missing[:5]} of the GVR index are not in the "
                          "radiographs table")
    problems = validate_frame(key, "reading_key", file=str(key_path))
    if problems:
        raise TableValidationError(problems)

    out_dir.mkdir(parents=True, exist_ok=True)
    # written in the order of the ids, all with one time stamp: file times and inode numbers tell nothing
    stamp = time.time()
    for i in np.argsort(ids, kind="stable"):
        row = chosen.iloc[i]
        for role in IMAGE_ROLES:
            path = out_dir / IMAGE_DIR / f"{ids[i]}-{role}.png"
            atomic_write_bytes(path, png_pixels_only(read_image(row[f"{role}_path"])))
            os.utime(path, (stamp, stamp))
    for reader in readers:
        for k in range(1, rounds + 1):
            order = [ids[i] for i in rng.permutation(len(ids))]
            atomic_write_text(out_dir / ORDER_DIR / f"{reader}-round{k}.json",
                              json.dumps({"reader": reader, "round": k, "ids": order}, indent=1) + "\n")
    write_packet_json(out_dir, features=features, readers=readers, rounds=rounds, ids=ids)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_path, key.sort_values("blinded_id").to_csv(index=False))
    log.info("packet %s: %d GVRs (%s); key %s", out_dir, len(ids), drawn, key_path)
    return PacketSummary(packet=load_packet(out_dir), key_path=key_path, drawn=drawn, available=available,
                         short_models=tuple(short))
