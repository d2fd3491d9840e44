"""A pleural effusion measured on a frontal radiograph by image analysis, without masks.

Fluid collects at the lung base and is dense, so the aerated lung ends higher: the costophrenic
angle is blunted and, as the effusion grows, the fluid level rises. The measure, per lung:

1. the lungs as :func:`modelling.cohort.ctr.segment_lungs` finds them (Otsu's threshold, the two
   largest dark regions inside the body);
2. aerated height: rows from the lung's apex to its lowest aerated row;
3. divided by the thoracic width (:func:`modelling.cohort.ctr.thoracic_width`), so that the
   patient's size and the film's scale cancel.

A lower ratio means less aerated lung, as a larger effusion leaves. A large effusion also fills the
lung's widest, lowest rows and so narrows the thoracic width measured from the lungs, which raises
the other lung's ratio a little (by less than half the effused side's fall). On phantoms of known effusion
(``tests/modelling/cohort/test_effusion.py``) the ratio falls monotonically as one effusion grows
with everything else fixed, and separates effusions above a tenth of the hemithorax from none with
an AUC above 0.95 on each side. An image whose lungs cannot be found gets NaN and the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelling.cohort.ctr import check_images, segment_lungs, thoracic_width

__all__ = ["measure", "LARGE", "large"]

#: An effusion filling at least this share of its hemithorax's height on either side: the size the
#: measure separates from none with AUC > 0.95 (``tests/modelling/cohort/test_effusion.py``), and the
#: size above which its fluid often reaches the heart's widest row, hiding the border the
#: cardiothoracic ratio is read at (the silhouette sign).
LARGE = 0.1


def _height(lung: np.ndarray) -> int:
    rows = np.flatnonzero(lung.any(axis=1))
    return int(rows.max() - rows.min() + 1)


def measure(images: np.ndarray) -> pd.DataFrame:
    """Aerated lung height over thoracic width, per lung, of each radiograph.

    Parameters
    ----------
    images : ndarray of uint8, shape (n, height, width)
        Frontal radiographs, bright = dense.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``height_right`` and ``height_left`` (the patient's right lung lies on
        the image's left; NaN where the lungs cannot be found) and ``reason`` (empty when measured).

    Examples
    --------
    >>> from modelling.cohort import phantom
    >>> params = {k: np.zeros(2, np.float32) for k in phantom.PARAMETERS}
    >>> params.update(cardiothoracic_ratio=np.full(2, 0.45), effusion_right=np.array([0.0, 0.3]),
    ...               body_mass_index=np.full(2, 25.0), scale=np.ones(2), exposure=np.ones(2))
    >>> images, _ = phantom.render(params, 64)
    >>> table = measure(images)
    >>> bool(table["height_right"].iloc[1] < table["height_right"].iloc[0]), list(table["reason"])
    (True, ['', ''])
    """
    images = check_images(images)
    rows = []
    for image in images:
        found = segment_lungs(image)
        if isinstance(found, str):
            rows.append((np.nan, np.nan, found))
            continue
        right, left = found
        width = thoracic_width(right, left)
        rows.append((_height(right) / width, _height(left) / width, ""))
    return pd.DataFrame(rows, columns=["height_right", "height_left", "reason"]).astype(
        {"height_right": float, "height_left": float, "reason": str})


def large(effusion_right, effusion_left) -> np.ndarray:
    """Per radiograph, whether its true effusion (phantom) is :data:`LARGE` on either side.

    >>> large([0.0, 0.05, 0.3], [0.0, 0.12, 0.0]).tolist()
    [False, True, True]
    """
    return np.maximum(np.asarray(effusion_right, float), np.asarray(effusion_left, float)) >= LARGE


def effused_side_height(table: pd.DataFrame, effusion_right, effusion_left) -> np.ndarray:
    """Per radiograph, the measured height of the side with the larger true effusion (phantom)."""
    right = np.asarray(effusion_right, float) >= np.asarray(effusion_left, float)
    return np.where(right, table["height_right"].to_numpy(), table["height_left"].to_numpy())
