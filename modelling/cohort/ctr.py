"""The cardiothoracic ratio measured on a frontal radiograph by thresholding, without masks.

Used to compare the decoder's samples with real radiographs on a property a radiologist reads
(issue 5: "the distribution of the cardiothoracic ratio measured by thresholding"), so it must work
on generated images, which carry no masks.

Method, per image (bright = dense):

1. smooth with a 3 x 3 mean filter (quantum noise would otherwise split the lungs);
2. Otsu's threshold over the central 80 % of rows and 90 % of columns; darker pixels are air;
3. the lungs are the two largest dark regions that do not touch the image border (air outside
   the body does), the one whose centre lies further left being the patient's right lung;
4. thoracic width: the widest row from the outer edge of one lung to the outer edge of the other;
   cardiac width: over the rows that cross both lungs, the widest gap between the lungs' inner
   edges (the heart and mediastinum, which are dense and interrupt the lungs);
5. ratio = cardiac width / thoracic width, both in pixels.

The ratio is the projected one: on AP films the magnified heart gives a larger ratio, as it does
for readers. An image where two lungs cannot be found gets NaN and a reason, not a guess.

Range: the cardiac width is read only where a row crosses both aerated lungs. A heart so large that it
hides a lung over its widest rows is read at a narrower row, so the measure stops rising and can fall;
an effusion that hides the lower heart does the same. ``tests/modelling/cohort/test_ctr.py`` validates
it over true ratios of 0.35-0.65 without effusion (64 and 128 px). On neutral 64 px phantoms without
effusion it reads about 0.7 from a true ratio of about 0.55 upwards and falls (to 0.5-0.6) from about
0.75 on PA and 0.67 on AP films (``_neutral`` of that test, ratios 0.55-0.79), so a heart shrinking
from there need not read lower.

Reference: Danzer CS. The cardiothoracic ratio: an index of cardiac enlargement.
Am J Med Sci 1919;157:513-521 (the ratio of maximal cardiac to maximal thoracic width).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = ["measure", "otsu_threshold", "compare", "compare_measured", "segment_lungs", "row_widths", "thoracic_width",
           "check_images"]

_COLUMNS = ["ctr", "cardiac_px", "thoracic_px", "reason"]


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold of uint8 values: the level maximising the between-class variance.

    Values strictly below the returned level form the dark class.
    """
    values = np.asarray(values)
    if values.dtype != np.uint8:
        raise TypeError(f"otsu_threshold needs uint8 values; got {values.dtype}")
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    weight = np.cumsum(p)  # share of pixels at or below each level
    mean = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * weight - mean) ** 2 / (weight * (1.0 - weight))
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between)) + 1


def check_images(images) -> np.ndarray:
    """`images` as an array, refused unless it is uint8 (n, height, width), bright = dense."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, height, width); got {images.shape}")
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (0-255, bright = dense); got {images.dtype}")
    return images


def segment_lungs(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | str:
    """Steps 1-3 of the method: the patient's right and left lungs as boolean masks (image left is
    the patient's right), or the reason they cannot be found."""
    size_y, size_x = image.shape
    smooth = ndimage.uniform_filter(image.astype(np.float32), 3, mode="nearest")
    smooth8 = np.clip(np.rint(smooth), 0, 255).astype(np.uint8)
    centre = smooth8[size_y // 10: size_y - size_y // 10, size_x // 20: size_x - size_x // 20]
    if centre.min() == centre.max():
        return "the image is uniform"
    dark = smooth8 < otsu_threshold(centre)
    labels, n = ndimage.label(dark)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    sizes = ndimage.sum_labels(dark, labels, np.arange(1, n + 1))
    inside = sorted(((sizes[k - 1], k) for k in range(1, n + 1) if k not in border), reverse=True)
    if len(inside) < 2:
        return f"{len(inside)} dark region(s) inside the body; two lungs are needed"
    cols = np.arange(size_x)
    first, second = (labels == inside[0][1]), (labels == inside[1][1])
    if cols @ first.sum(axis=0) / first.sum() < cols @ second.sum(axis=0) / second.sum():
        return first, second  # image left = patient's right
    return second, first


def row_widths(right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, in pixels: the gap between the lungs' inner edges (the cardiac shadow; meaningful in
    rows that cross both lungs) and the span from one lung's outer edge to the other's (meaningful in
    rows that cross either)."""
    lungs = right | left
    size_x = lungs.shape[1]
    cols = np.arange(size_x)
    cardiac = np.where(left, cols, size_x).min(axis=1) - np.where(right, cols, -1).max(axis=1) - 1
    thoracic = np.where(lungs, cols, -1).max(axis=1) - np.where(lungs, cols, size_x).min(axis=1) + 1
    return cardiac, thoracic


def thoracic_width(right: np.ndarray, left: np.ndarray) -> int:
    """The widest row from the outer edge of one lung to the outer edge of the other, in pixels."""
    return int(row_widths(right, left)[1][(right | left).any(axis=1)].max())


def _measure_one(image: np.ndarray) -> tuple[float, int, int, str]:
    found = segment_lungs(image)
    if isinstance(found, str):
        return np.nan, 0, 0, found
    right, left = found
    gaps, spans = row_widths(right, left)
    thoracic = int(spans[(right | left).any(axis=1)].max())
    both = right.any(axis=1) & left.any(axis=1)
    if not both.any():
        return np.nan, 0, thoracic, "no row crosses both lungs"
    cardiac = int(gaps[both].max())
    if cardiac <= 0:
        return np.nan, 0, thoracic, "the lungs touch: no cardiac shadow between them"
    return cardiac / thoracic, cardiac, thoracic, ""


def measure(images: np.ndarray) -> pd.DataFrame:
    """Measure the cardiothoracic ratio of each radiograph.

    Parameters
    ----------
    images : ndarray of uint8, shape (n, height, width)
        Frontal radiographs, bright = dense (as the phantom and DICOM MONOCHROME2).

    Returns
    -------
    pandas.DataFrame
        One row per image: ``ctr`` (NaN where it cannot be measured), ``cardiac_px``,
        ``thoracic_px`` and ``reason`` (empty when measured, otherwise why not).

    Examples
    --------
    >>> from modelling.cohort import phantom
    >>> params = {k: np.zeros(2, np.float32) for k in phantom.PARAMETERS}
    >>> params.update(cardiothoracic_ratio=np.array([0.4, 0.6]), body_mass_index=np.full(2, 25.0),
    ...               scale=np.ones(2), exposure=np.ones(2))
    >>> images, _ = phantom.render(params, 64)
    >>> table = measure(images)
    >>> bool(table["ctr"].iloc[1] > table["ctr"].iloc[0]), list(table["reason"])
    (True, ['', ''])
    """
    images = check_images(images)
    rows = [_measure_one(image) for image in images]
    return pd.DataFrame(rows, columns=_COLUMNS).astype(
        {"ctr": float, "cardiac_px": int, "thoracic_px": int, "reason": str})


def _describe(values: np.ndarray, n: int) -> dict:
    if values.size == 0:
        return {"n": n, "measured": 0}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"n": n, "measured": int(values.size), "median": float(median), "q1": float(q1),
            "q3": float(q3), "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0}


def compare(real: np.ndarray, generated: np.ndarray) -> dict:
    """Compare the measured cardiothoracic ratios of real and generated radiographs.

    Returns a JSON-ready dict: per side the count, how many could be measured, median, quartiles
    (numpy's linear rule, R's type 7), mean and SD; the 1-Wasserstein distance between the two
    distributions and the two-sample Kolmogorov-Smirnov test (scipy, exact where it can be).
    """
    return compare_measured(measure(real), measure(generated))


def compare_measured(real: pd.DataFrame, generated: pd.DataFrame) -> dict:
    """:func:`compare` of two tables :func:`measure` already made."""
    from scipy.stats import ks_2samp, wasserstein_distance

    sides = {}
    values = {}
    for name, table in (("real", real), ("generated", generated)):
        values[name] = table["ctr"].dropna().to_numpy()
        sides[name] = _describe(values[name], len(table))
        reasons = table.loc[table["ctr"].isna(), "reason"].value_counts()
        sides[name]["not_measured"] = {str(k): int(v) for k, v in reasons.items()}
    out = {"method": "modelling.cohort.ctr.measure (Otsu threshold, lungs as the two largest inner dark regions)",
           **sides}
    if values["real"].size and values["generated"].size:
        ks = ks_2samp(values["real"], values["generated"])
        out |= {"wasserstein": float(wasserstein_distance(values["real"], values["generated"])),
                "ks_statistic": float(ks.statistic), "ks_p_value": float(ks.pvalue)}
    return out
