"""Segmentations of real radiographs (``gvr cohort ingest --masks masks.csv``): where each feature lies.

With them the audit reads a real model as it reads the phantom's: by its response to its GVRs' change
outside the disease masks against inside them (:mod:`modelling.explain.audit`), and the baselines are
scored against the masks (:mod:`modelling.explain.faithfulness`).

Input
-----
``masks.csv``, one row per mask: ``image`` (the radiograph as the images manifest's ``file`` names it,
or, for a DICOM folder, the file's path inside the folder), ``feature`` (one of
:data:`data_schema.tables.MASK_FEATURES`) and ``mask`` (a PNG or JPEG of the radiograph's own size,
relative to the CSV). A mask of two grey levels (0/1, 0/255, 0/65535 as exported) is inside at the
upper one; one of more levels (anti-aliased edges, JPEG noise) is inside above half of full scale.
A mask covering more than :data:`MOST` of its radiograph (inverted? the whole film?), or one that
vanishes at the bundle's size (thinner than a pixel there), is named in a warning.

A feature named anywhere in the file is taken as segmented on every radiograph the file names: a
radiograph with no row for it has none of it (a radiograph without an effusion has no effusion mask).
The heart is the exception: every radiograph has one, so each radiograph named needs a heart mask that
is not empty at the bundle's size. A colour mask, or a path that is absolute, is refused at its row.
Radiographs the file does not name have no masks, and are left out of every measure that needs them.
The audit's regions count every pixel outside the disease masks as not disease, so the file must
segment all of :data:`REQUIRED` (a heart mask alone would count the effusions against the model).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from data_schema.tables import MASK_FEATURES
from data_schema.validate import Problem
from modelling.cohort.phantom import MASK_BITS

#: The columns of masks.csv.
COLUMNS = ("image", "feature", "mask")
#: Features every masks file must segment: the disease masks the audit's regions are drawn around.
REQUIRED = ("heart", "effusion", "opacity")
#: Bit i of a packed mask is feature ``MASK_FEATURES[i]``, as the phantom packs its masks.
BITS = MASK_BITS

log = logging.getLogger(__name__)
#: A mask covering more than this share of its radiograph is named in a warning (inverted? the whole film?).
MOST = 0.9


def input_name(item, dicom_dir: Path | None) -> str:
    """How masks.csv names a radiograph: its manifest file, or its path inside the DICOM folder."""
    from modelling.cohort.ingest import listed_name

    if dicom_dir is None:
        return item.image_key if item.row is not None else listed_name(item.source)
    return Path(item.source).relative_to(dicom_dir).as_posix()


def read_masks_csv(path: Path) -> tuple[pd.DataFrame, list[Problem]]:
    """masks.csv checked on its own: columns, features, duplicates, files that exist, the required features.

    Returns the rows (``image`` as one spelling, ``feature``, ``file``: the mask's path, ``row``: 1-based)
    and the problems found.
    """
    from modelling.cohort.ingest import ABSOLUTE, _read_csv, is_absolute, listed_name

    df, problems = _read_csv(path, list(COLUMNS))
    if problems:
        return pd.DataFrame(columns=["image", "feature", "file", "given", "row"]), problems
    rows, seen = [], {}
    for i, r in enumerate(df.itertuples(index=False), start=1):
        image, feature, mask = r.image.strip(), r.feature.strip(), r.mask.strip()
        bad = False
        for column, value in (("image", image), ("mask", mask)):
            if not value:
                problems.append(Problem(str(path), i, column, value, "missing value"))
                bad = True
        if feature not in BITS:
            problems.append(Problem(str(path), i, "feature", r.feature,
                                    f"not a mask feature (one of {', '.join(MASK_FEATURES)})"))
            bad = True
        if bad:
            continue
        image = listed_name(image)
        if (image, feature) in seen:
            problems.append(Problem(str(path), i, "feature", feature,
                                    f"a second {feature} mask of {image} (the first in row {seen[image, feature]})"))
            continue
        seen[image, feature] = i
        if is_absolute(listed_name(mask)):
            problems.append(Problem(str(path), i, "mask", mask, ABSOLUTE))
            continue
        file = path.parent / listed_name(mask)
        if not file.is_file():
            problems.append(Problem(str(path), i, "mask", mask, "no such file (paths are relative to the CSV)"))
            continue
        rows.append({"image": image, "feature": feature, "file": file, "given": mask, "row": i})
    named = {r["feature"] for r in rows}
    missing = [f for f in REQUIRED if f not in named]
    if rows and missing:
        problems.append(Problem(str(path), None, "feature", None,
                                f"no {', '.join(missing)} mask on any radiograph: the audit counts every pixel outside "
                                f"the disease masks as not disease, so {', '.join(REQUIRED)} must all be segmented "
                                "(a radiograph without one has no row for it)"))
    if not rows and not problems:
        problems.append(Problem(str(path), None, None, None, "no masks listed"))
    return pd.DataFrame(rows, columns=["image", "feature", "file", "given", "row"]), problems


def read_mask(file: Path) -> np.ndarray:
    """One mask image as 0/1: a two-level image inside at its upper level (0/1, 0/255 and 0/65535 masks
    alike), any other inside above half of its mode's full scale (anti-aliased edges, JPEG noise); an
    all-black image is an empty mask. Read as the radiographs are (:func:`modelling.cohort.ingest.read_still`);
    a colour image is refused (ValueError), since its channels' mean puts a pure colour below half scale."""
    from modelling.cohort.ingest import read_still

    values, full, colour = read_still(file, "mask")
    if colour:  # the mean of the channels would put a pure red mask (85 of 255) outside itself
        raise ValueError("a colour image: give the mask in grey levels or black and white, inside bright")
    values = values.astype(np.float64)
    levels = np.unique(values)
    if len(levels) == 2 and levels[0] == 0:
        return (values == levels[1]).astype(np.float32)
    return (values > full / 2).astype(np.float32)


def pack(masks: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Boolean masks by feature -> one uint8 array of bits (a feature absent from `masks` is empty)."""
    bits = np.zeros(shape, np.uint8)
    for name, mask in masks.items():
        bits |= mask.astype(np.uint8) * np.uint8(BITS[name])
    return bits


def fitted_masks(rows: pd.DataFrame, path: Path, items: dict, inputs: set[str], size: int,
                 problems: list[Problem]) -> tuple[dict[str, np.ndarray], int]:
    """Each named radiograph's masks, fitted to `size` as its image was, packed as bits.

    Parameters
    ----------
    rows : DataFrame
        From :func:`read_masks_csv`.
    path : Path
        The masks file, for problems.
    items : dict
        The kept radiographs by the name masks.csv gives them (manifest file, or path in the DICOM folder),
        each a :class:`modelling.cohort.ingest.Loaded`.
    inputs : set of str
        Every radiograph's name among the inputs, kept or not.
    size : int
        The bundle's image size.
    problems : list
        Appended to: a mask of a radiograph not among the inputs, unreadable, or of another size than its
        radiograph as read, a colour mask, an empty heart mask, a radiograph without a heart mask.

    Returns
    -------
    dict, int
        Packed masks by the radiograph's ``image_key``, and how many rows named a radiograph that was read
        but excluded (a lateral view, say): those masks are passed over.
    """
    from modelling.cohort.ingest import fit_square

    by_image: dict[str, dict[str, np.ndarray]] = {}
    first_row: dict[str, tuple[int, str]] = {}
    passed_over = 0
    for r in rows.itertuples(index=False):
        item = items.get(r.image)
        if item is None:
            if r.image in inputs:  # read, then excluded (a lateral view, say): nothing to segment
                passed_over += 1
            else:
                problems.append(Problem(str(path), r.row, "image", r.image,
                                        "not a radiograph of the inputs (the manifest's file, or a path in the "
                                        "DICOM folder)"))
            continue
        first_row.setdefault(item.image_key, (r.row, r.image))
        try:
            mask = read_mask(r.file)
        except (ValueError, FileNotFoundError) as exc:
            problems.append(Problem(str(path), r.row, "mask", r.given, str(exc)))
            continue
        if item.shape is not None and tuple(mask.shape) != tuple(item.shape):
            problems.append(Problem(str(path), r.row, "mask", r.given,
                                    f"{mask.shape[0]} x {mask.shape[1]} px, its radiograph {item.shape[0]} x "
                                    f"{item.shape[1]}: a mask must be drawn on the radiograph's own pixels"))
            continue
        fitted = fit_square(mask, size) > 0.5
        if r.feature == "heart" and not fitted.any():  # every radiograph has one: a segmentation lost
            problems.append(Problem(str(path), r.row, "mask", r.given,
                                    "the heart mask is empty" + (f" at the bundle's {size} px (thinner than a pixel there)"
                                                                 if mask.any() else "")))
            continue
        if mask.mean() > MOST:
            log.warning("%s, row %d, column 'mask': the %s mask %s covers %.0f %% of its radiograph (inverted? "
                        "the whole film?)", path, r.row, r.feature, r.given, 100 * mask.mean())
        elif mask.any() and not fitted.any():
            log.warning("%s, row %d, column 'mask': the %s mask %s vanishes at the bundle's %d px (thinner than a "
                        "pixel there): it counts as empty", path, r.row, r.feature, r.given, size)
        by_image.setdefault(item.image_key, {})[r.feature] = fitted
    # every radiograph has a heart: without its mask the whole change would count as outside the disease masks
    hearts = {r.image for r in rows.itertuples(index=False) if r.feature == "heart"}
    problems += [Problem(str(path), row, "image", image, f"no heart mask of {image}: every radiograph the file names "
                         "needs one (the audit counts what lies outside the disease masks as not disease)")
                 for row, image in first_row.values() if image not in hearts]
    packed = {key: pack(masks, (size, size)) for key, masks in by_image.items()}
    return packed, passed_over
