"""A procedural frontal chest radiograph with known ground truth (grayscale, bright = dense).

:func:`render` draws a batch of radiographs from per-image parameters (:data:`PARAMETERS`), vectorised
over the batch with numpy. Shapes are evaluated in patient coordinates (x from the patient's right,
on the image's left, to the patient's left; y from the neck, -1, to the abdomen, +1) after each
image's rotation, shift and scale, so masks and image stay aligned. Each feature also yields a
boolean mask, packed as bits in the order of :data:`data_schema.tables.MASK_FEATURES`. A mask marks
the feature's anatomical extent, as a reader outlining it would, not only where it shows: the opacity
mask covers the perihilar haze behind the heart and under an effusion too, where the denser heart or
fluid hides it (so the mask is larger than the pixels the opacity changes, and top-k and rank measures
against it cannot reach 1), and the heart mask runs on under an effusion.

Anatomy: torso whose soft-tissue wall thickens with body mass; lungs; heart whose width is the
cardiothoracic ratio times the thoracic width, magnified on AP; mediastinum and aortic knob;
diaphragm; ribs and clavicles. Disease: cardiomegaly (the ratio), pleural effusion per side with a
meniscus that blunts the costophrenic angle, perihilar airspace opacity, pacemaker with its lead.
Patient idiosyncrasies (rotation, shift, skin markers, ECG electrodes, a laterality marker) come
from per-patient parameters, so they repeat across a patient's radiographs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from data_schema.tables import MASK_FEATURES

#: Per-image parameters of :func:`render` (each a 1-D array over the batch).
PARAMETERS = (
    "cardiothoracic_ratio",  # heart width / thoracic width, as projected PA
    "effusion_left", "effusion_right",  # share of the hemithorax height filled with fluid
    "opacity",  # perihilar haze, 0..1
    "pacemaker",  # 0/1
    "body_mass_index",  # kg/m^2: thickness of the soft-tissue wall
    "ap",  # 1 for AP (supine): heart magnified, clavicles higher
    "rotation_deg", "shift_x", "shift_y", "scale",  # positioning
    "markers_seed",  # per patient: skin markers, electrodes, laterality marker
    "electrodes",  # number of ECG electrodes (0-4)
    "exposure", "noise", "blur",  # acquisition
    "noise_seed",  # per image
    "shortcut",  # 0/1: a lead marker BNP does not cause (shortcut benchmarks; cohort.shortcut_*_share)
)

AP_MAGNIFICATION = 1.12  # the heart is farther from the detector on AP films
THORAX_HALF_WIDTH = 0.62
MASK_BITS = {name: 1 << i for i, name in enumerate(MASK_FEATURES)}


def _soft(signed_distance: np.ndarray, edge: float) -> np.ndarray:
    """1 inside (negative distance), 0 outside, with a smooth edge of width ~`edge`."""
    return 0.5 * (1.0 - np.tanh(signed_distance / edge))


def _ellipse(x, y, cx, cy, a, b):
    """Approximate signed distance to an ellipse (negative inside), in coordinate units."""
    r = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _segment_distance(x, y, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0.0, 1.0)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


def _col(values, n):
    return np.asarray(values, dtype=np.float32).reshape(n, 1, 1)


def render(params: dict[str, np.ndarray], size: int, *, idiosyncrasies: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Render a batch of phantom radiographs and their feature masks.

    Parameters
    ----------
    params : dict of str to array
        One 1-D array of length n per name in :data:`PARAMETERS`.
    size : int
        Image height and width in pixels.
    idiosyncrasies : bool
        False draws the radiographs without their skin markers, ECG electrodes and laterality
        marker (for interventions; nothing else, the noise included, changes).

    Returns
    -------
    images : ndarray of uint8, shape (n, size, size)
        Bright = dense.
    mask_bits : ndarray of uint8, shape (n, size, size)
        Bit i set where feature ``MASK_FEATURES[i]`` lies.
    """
    if "shortcut" not in params:  # optional: render tables of phantom versions before 4 lack it
        params = {**params, "shortcut": np.zeros(len(params["cardiothoracic_ratio"]))}
    missing = [k for k in PARAMETERS if k not in params]
    if missing:
        raise KeyError(f"render: missing parameters {missing}")
    n = len(params["cardiothoracic_ratio"])
    p = {k: _col(params[k], n) for k in PARAMETERS}
    edge = np.float32(1.5 / size)  # about one and a half pixels

    # image grid -> patient coordinates (inverse of rotation, scale and shift)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    theta = np.deg2rad(p["rotation_deg"])
    cos, sin = np.cos(theta), np.sin(theta)
    u = (gx[None] - p["shift_x"]) / p["scale"]
    v = (gy[None] - p["shift_y"]) / p["scale"]
    x = cos * u + sin * v
    y = -sin * u + cos * v

    bmi = p["body_mass_index"]
    wall = np.clip(0.06 + 0.012 * (bmi - 25.0), 0.03, 0.26)
    torso = _soft(_ellipse(x, y, 0.0, 0.15, THORAX_HALF_WIDTH + wall, 1.35), edge)
    thorax = _soft(_ellipse(x, y, 0.0, 0.0, THORAX_HALF_WIDTH, 0.9), edge)
    soft_tissue = torso * (1.0 - thorax) * (y > -0.85)

    # diaphragm domes: lung bases at y_d(x), right dome higher (liver)
    ax = np.abs(x)
    dome_r = 0.40 + 0.55 * (x + 0.30) ** 2
    dome_l = 0.45 + 0.55 * (x - 0.30) ** 2
    dome = np.where(x < 0, dome_r, dome_l)
    above = _soft(y - dome, edge)
    lung_r = _soft(_ellipse(x, y, -0.31, -0.02, 0.27, 0.62), edge) * above
    lung_l = _soft(_ellipse(x, y, 0.31, -0.02, 0.26, 0.62), edge) * above
    lungs = np.maximum(lung_r, lung_l)

    mag = np.where(p["ap"] > 0.5, AP_MAGNIFICATION, 1.0).astype(np.float32)
    heart_a = p["cardiothoracic_ratio"] * THORAX_HALF_WIDTH * mag
    heart_b = (0.12 + 0.22 * p["cardiothoracic_ratio"]) * mag
    heart_cx = 0.05 + 0.3 * (heart_a - 0.26)
    heart_cy = 0.24 + 0.3 * (heart_b - 0.22)
    heart = _soft(_ellipse(x, y, heart_cx, heart_cy, heart_a, heart_b), edge) * _soft(-0.12 - y, edge)
    heart = heart * _soft(y - (dome + 0.03), edge)
    mediastinum = _soft(np.abs(x - 0.01) - (0.085 + 0.02 * (y + 0.8)), edge) * _soft(y - 0.25, edge) * _soft(-0.85 - y, edge)
    knob = _soft(_ellipse(x, y, 0.1, -0.3, 0.07, 0.06), edge)
    abdomen = torso * (1.0 - above)

    # bones: posterior ribs as arcs falling laterally, clavicles higher on AP
    ribs = np.zeros_like(x)
    for k in range(9):
        y0 = -0.70 + 0.15 * k
        arc = y0 + 0.35 * ax**2 + 0.05 * ax
        ribs = np.maximum(ribs, _soft(np.abs(y - arc) - 0.022, edge))
    ribs = ribs * thorax * (ax > 0.04)
    clav_y = np.where(p["ap"] > 0.5, -0.80, -0.70).astype(np.float32)
    clavicles = np.maximum(
        _soft(_segment_distance(x, y, -0.07, clav_y + 0.05, -0.55, clav_y - 0.03) - 0.025, edge),
        _soft(_segment_distance(x, y, 0.07, clav_y + 0.05, 0.55, clav_y - 0.03) - 0.025, edge),
    )

    # pleural effusion: fluid from the dome up to a level that rises laterally (meniscus)
    def effusion(lung, fraction, cx):
        height = fraction * 1.1
        level = dome - height - 0.35 * fraction * np.abs(x - cx) / 0.27
        return lung * _soft(level - y, edge) * (fraction > 0.005)

    eff_r = effusion(_soft(_ellipse(x, y, -0.31, -0.02, 0.27, 0.62), edge) * _soft(y - dome - 0.03, edge),
                     p["effusion_right"], -0.31)
    eff_l = effusion(_soft(_ellipse(x, y, 0.31, -0.02, 0.26, 0.62), edge) * _soft(y - dome - 0.03, edge),
                     p["effusion_left"], 0.31)
    effusions = np.maximum(eff_r, eff_l)

    # perihilar (bat-wing) airspace opacity
    haze = p["opacity"] * (
        np.exp(-(((x + 0.2) / 0.2) ** 2 + ((y - 0.0) / 0.3) ** 2))
        + np.exp(-(((x - 0.2) / 0.2) ** 2 + ((y - 0.0) / 0.3) ** 2))
    ) * lungs

    # pacemaker in the left upper chest with a lead to the right ventricle
    gen = _soft(np.maximum(np.abs(x - 0.45) - 0.07, np.abs(y + 0.55) - 0.045), edge)
    lead = np.full_like(x, np.inf)
    pts = [(0.40, -0.55), (0.20, -0.50), (0.03, -0.35), (0.0, -0.05), (0.05, 0.20), (0.20, 0.40)]
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        lead = np.minimum(lead, _segment_distance(x, y, x0, y0, x1, y1))
    device = np.maximum(gen, _soft(lead - 0.012, edge)) * (p["pacemaker"] > 0.5)

    # compose densities (0 air .. 1 metal)
    img = 0.50 * torso + 0.03 * (bmi - 25.0) / 5.0 * torso
    img = img * (1 - lungs) + 0.14 * lungs
    img = img + 0.12 * ribs + 0.15 * clavicles
    img = np.maximum(img, 0.52 * np.maximum(mediastinum, knob))
    img = img * (1 - heart) + (0.55 + 0.03 * (bmi - 25.0) / 5.0) * heart
    img = img * (1 - effusions) + 0.50 * effusions
    img = img + 0.32 * haze * (1 - heart) * (1 - effusions)
    img = np.maximum(img, 0.58 * abdomen)
    img = np.maximum(img, 0.98 * device)
    # the shortcut: a lead "T" at the top centre of the film, where no anatomy or other marker lies
    shortcut = np.maximum(
        _soft(np.maximum(np.abs(gx - 0.0) - 0.09, np.abs(gy + 0.89) - 0.03), edge),
        _soft(np.maximum(np.abs(gx - 0.0) - 0.03, np.abs(gy + 0.81) - 0.07), edge),
    ) * (p["shortcut"] > 0.5)
    img = np.maximum(img, shortcut)
    marks = np.zeros_like(img)
    if idiosyncrasies:
        img, marks = _idiosyncrasies(img, params, x, y, gx, gy, edge)

    # acquisition: exposure, blur, quantum noise
    img = img * p["exposure"]
    for i in range(n):
        sigma = float(params["blur"][i]) * size / 128.0
        if sigma > 0.05:
            img[i] = ndimage.gaussian_filter(img[i], sigma, mode="nearest")
        rng = np.random.default_rng(int(params["noise_seed"][i]))
        img[i] += rng.normal(0.0, float(params["noise"][i]), (size, size)).astype(np.float32)
    images = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

    masks = {
        "heart": heart > 0.5,
        "effusion": effusions > 0.5,
        "opacity": haze > 0.1,
        "soft_tissue": soft_tissue > 0.5,
        "device": device > 0.5,
        "markers": marks > 0.5,
        "shortcut": shortcut > 0.5,
    }
    bits = np.zeros((n, size, size), np.uint8)
    for name, mask in masks.items():
        bits |= mask.astype(np.uint8) * np.uint8(MASK_BITS[name])
    return images, bits


def _idiosyncrasies(img, params, x, y, gx, gy, edge):
    """Skin markers, ECG electrodes and a laterality marker, fixed for each patient; returns the image and
    where they lie (their density before blur, 0-1)."""
    n = img.shape[0]
    marks = np.zeros_like(img)
    for i in range(n):
        rng = np.random.default_rng(int(params["markers_seed"][i]))
        xi, yi = x[i], y[i]
        for _ in range(rng.integers(0, 4)):  # skin markers: small dense dots
            cx, cy = rng.uniform(-0.6, 0.6), rng.uniform(-0.7, 0.5)
            dot = _soft(np.hypot(xi - cx, yi - cy) - 0.018, edge)
            img[i] = np.maximum(img[i], 0.95 * dot)
            marks[i] = np.maximum(marks[i], dot)
        spots = rng.uniform([-0.7, -0.8], [0.7, -0.4], size=(4, 2))
        for cx, cy in spots[: int(params["electrodes"][i])]:  # ECG electrodes: dense rings
            r = np.hypot(xi - cx, yi - cy)
            ring = _soft(np.abs(r - 0.035) - 0.008, edge)
            img[i] = np.maximum(img[i], 0.9 * ring)
            marks[i] = np.maximum(marks[i], ring)
        # laterality marker in an image corner: an "L" of two bars (image, not patient, coordinates)
        corner = rng.integers(0, 4)
        sx = -0.85 if corner in (0, 2) else 0.72
        sy = -0.9 if corner in (0, 1) else 0.75
        scale = rng.uniform(0.8, 1.2)
        bar_v = _soft(np.maximum(np.abs(gx - sx) - 0.012 * scale, np.abs(gy - (sy + 0.05 * scale)) - 0.05 * scale), edge)
        bar_h = _soft(np.maximum(np.abs(gx - (sx + 0.035 * scale)) - 0.035 * scale, np.abs(gy - (sy + 0.09 * scale)) - 0.012 * scale), edge)
        img[i] = np.maximum(img[i], np.maximum(bar_v, bar_h))
        marks[i] = np.maximum(marks[i], np.maximum(bar_v, bar_h))
    return img, marks


def unpack_masks(bits: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks by feature name from the packed bits of :func:`render`."""
    return {name: (bits & np.uint8(bit)) > 0 for name, bit in MASK_BITS.items()}
