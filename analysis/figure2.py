"""Figure 2 of the paper: predicted vs actual BNP (log-log) and the ROC curve at 100 ng/L.

Figures are drawn on matplotlib's Agg canvas without pyplot, so nothing is displayed and no global
backend is changed.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> true = np.exp(rng.normal(5.8, 1.2, 60))
>>> pred = np.exp(np.log(true) * 0.6 + rng.normal(2.3, 0.5, 60))
>>> predictions = pd.DataFrame({"image_id": [f"i{i}" for i in range(60)], "model_id": "mlp-correct",
...     "predictor": "mlp", "regime": "correct", "role": "test", "checkpoint_sha256": "0" * 64,
...     "bnp_true_ng_l": true, "bnp_pred_ng_l": pred})
>>> fig2 = figure2(predictions)
>>> fig2.model_id, fig2.n, fig2.auc.method
('mlp-correct', 60, 'delong')
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis._checks import check_level, check_option
from analysis.roc import AucResult, RocCurve, auc, roc_curve

__all__ = ["Figure2Result", "figure2", "figure_bytes", "save_figure"]

ROLES = ("train", "test", "validation")
FORMATS = ("png", "svg")
_COLUMNS = ("image_id", "model_id", "predictor", "regime", "role", "bnp_true_ng_l", "bnp_pred_ng_l")


@dataclass(frozen=True)
class Figure2Result:
    """Figure 2 and what it shows.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        Two panels: A, predicted vs actual BNP on log-log axes with dashed lines at the threshold;
        B, the ROC curve (sensitivity against 1 - specificity) with the AUC and its CI in the legend.
    model_id : str
        The predictor shown.
    regime, role : str
        Its regime and the role of the radiographs shown (``"test"`` by default).
    n : int
        Radiographs shown.
    threshold : float
        BNP cutoff in ng/L; a radiograph with measured BNP ``>= threshold`` is a case.
    auc : analysis.roc.AucResult
        AUC of predicted BNP for ``bnp_true_ng_l >= threshold``, with its DeLong CI.
    curve : analysis.roc.RocCurve
        The curve drawn in panel B.
    data : pandas.DataFrame
        The rows drawn in panel A (``image_id, bnp_true_ng_l, bnp_pred_ng_l``), in plotting order.
    alt_text : str
        A description of the figure for screen readers.
    caption : str
        The figure caption.
    """

    figure: Figure = field(repr=False)
    model_id: str
    regime: str
    role: str
    n: int
    threshold: float
    auc: AucResult
    curve: RocCurve = field(repr=False)
    data: pd.DataFrame = field(repr=False)
    alt_text: str = field(repr=False)
    caption: str = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row: model, regime, role, n, threshold and the AUC fields."""
        row = {"model_id": self.model_id, "regime": self.regime, "role": self.role, "n": self.n,
               "threshold": self.threshold}
        row.update(asdict(self.auc))
        return pd.DataFrame([row])


def _choose_model(predictions: pd.DataFrame, model_id: str | None) -> str:
    if model_id is not None:
        known = sorted(predictions["model_id"].unique())
        if model_id not in known:
            raise ValueError(f"model_id {model_id!r} is not in predictions; it has {known}")
        return model_id
    correct = predictions[predictions["regime"] == "correct"]
    models = sorted(correct["model_id"].unique())
    if len(models) == 1:
        return models[0]
    mlps = sorted(correct.loc[correct["predictor"] == "mlp", "model_id"].unique())
    if len(mlps) == 1:
        return mlps[0]
    if not models:
        raise ValueError("predictions has no model of the correct regime; pass model_id=")
    raise ValueError(f"predictions has several correctly trained models {models}; pass model_id= to choose one")


def figure2(
    predictions: pd.DataFrame,
    *,
    model_id: str | None = None,
    role: str = "test",
    threshold: float = 100.0,
    level: float = 0.95,
) -> Figure2Result:
    """Draw the paper's Figure 2 for one predictor.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The bundle's ``predictions`` table (``image_id, model_id, predictor, regime, role,
        bnp_true_ng_l, bnp_pred_ng_l``).
    model_id : str, optional
        Predictor to show. Default: the correct-regime model if there is one; among several, the
        one MLP (the paper's Figure 2 shows the correctly trained multilayer perceptron).
    role : {"test", "train", "validation"}, default "test"
        Which of the model's radiographs to show; the paper evaluates on the held-out test set.
    threshold : float, default 100.0
        BNP cutoff in ng/L: measured BNP ``>= threshold`` is a case (CHF).
    level : float, default 0.95
        Confidence level of the DeLong interval.

    Returns
    -------
    Figure2Result
        ``figure, model_id, regime, role, n, threshold, auc, curve, data, alt_text, caption``.

    Raises
    ------
    ValueError
        If a column is missing, the model is unknown or ambiguous, it has no rows of ``role``,
        ``role`` is not allowed, or ``threshold`` is not positive.
    analysis.errors.OneClassError
        If the rows shown hold only cases or only controls (no ROC curve).

    Notes
    -----
    Panel B plots :math:`1 - \\text{specificity}` against sensitivity at pROC's thresholds
    (:func:`analysis.roc.roc_curve`) of predicted BNP; the AUC and its DeLong interval come from
    :func:`analysis.roc.auc`. Both are invariant to the log scale of panel A.

    References
    ----------
    .. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
       receiver operating characteristic curves: a nonparametric approach. Biometrics
       1988;44:837-845. doi:10.2307/2531595
    .. [2] Seah JCY, et al. Radiology 2019;290:514-522. doi:10.1148/radiol.2018180887

    Examples
    --------
    See the module docstring.
    """
    if not isinstance(predictions, pd.DataFrame):
        raise TypeError(f"predictions must be a pandas DataFrame; got {type(predictions).__name__}")
    missing = [c for c in _COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lacks column(s) {missing}; expected the bundle's predictions table")
    check_option("role", role, ROLES)
    level = check_level(level)
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive BNP in ng/L (e.g. 100.0); got {threshold!r}")
    model = _choose_model(predictions, model_id)
    rows = predictions[predictions["model_id"] == model]
    regime = str(rows["regime"].iloc[0])
    rows = rows[rows["role"] == role]
    if rows.empty:
        roles = sorted(predictions.loc[predictions["model_id"] == model, "role"].unique())
        raise ValueError(f"model {model!r} has no predictions with role {role!r}; it has roles {roles}")
    data = rows[["image_id", "bnp_true_ng_l", "bnp_pred_ng_l"]].reset_index(drop=True)
    for column in ("bnp_true_ng_l", "bnp_pred_ng_l"):
        values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():  # a missing measured BNP would otherwise count as a control (NaN >= threshold is False)
            shown = ", ".join(f"{i} ({data[column].iloc[k]!r})" for k, i in
                              zip(np.flatnonzero(bad)[:5], data["image_id"][bad].head(5)))
            raise ValueError(f"predictions: column {column!r} of model {model!r}, role {role!r} must be a positive, "
                             f"finite BNP in ng/L; {int(bad.sum())} row(s) are not, e.g. image_id {shown}")
    true = data["bnp_true_ng_l"].to_numpy(dtype=float)
    pred = data["bnp_pred_ng_l"].to_numpy(dtype=float)
    y = true >= threshold
    result = auc(y, pred, ci="delong", level=level)
    curve = roc_curve(y, pred)

    fig = Figure(figsize=(10, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_a, ax_b = fig.subplots(1, 2)
    ax_a.scatter(true, pred, s=10, alpha=0.5, color="C0", edgecolors="none", label="Radiograph")
    ax_a.set_xscale("log")
    ax_a.set_yscale("log")
    ax_a.axvline(threshold, linestyle="--", color="0.3", linewidth=1)
    ax_a.axhline(threshold, linestyle="--", color="0.3", linewidth=1)
    ax_a.set_xlabel("Actual BNP (ng/L)")
    ax_a.set_ylabel("Predicted BNP (ng/L)")
    ax_a.set_title("A", loc="left", fontweight="bold")
    pct = f"{100 * level:g}"
    label = f"AUC {result.auc:.2f} ({pct}% CI: {result.ci_low:.2f}, {result.ci_high:.2f})"
    ax_b.plot(1.0 - curve.specificity, curve.sensitivity, color="C1", linewidth=1.5, label=label)
    ax_b.plot([0, 1], [0, 1], linestyle=":", color="0.6", linewidth=1)
    ax_b.set_xlim(0, 1)
    ax_b.set_ylim(0, 1)
    ax_b.set_aspect("equal")
    ax_b.set_xlabel("1 - Specificity")
    ax_b.set_ylabel("Sensitivity")
    ax_b.set_title("B", loc="left", fontweight="bold")
    ax_b.legend(loc="lower right")

    cut = f"{threshold:g}"
    alt = (f"Two panels for model {model} ({regime} regime) on {len(data)} {role}-set radiographs. "
           f"A: scatterplot of predicted against actual BNP on logarithmic axes from "
           f"{min(true.min(), pred.min()):.0f} to {max(true.max(), pred.max()):.0f} ng/L, with dashed lines "
           f"at {cut} ng/L on both axes. B: ROC curve for actual BNP of at least {cut} ng/L "
           f"({result.n_pos} cases, {result.n_neg} controls); {label}.")
    caption = (f"Figure 2: A, Scatterplot of predicted B-type natriuretic peptide (BNP) versus actual BNP on a "
               f"logarithmic scale for model {model}. B, Receiver operating characteristic (ROC) curve. "
               f"At a cutoff of {cut} ng/L, this model achieved an area under the ROC curve (AUC) of "
               f"{result.auc:.2f} ({pct}% DeLong CI: {result.ci_low:.2f}, {result.ci_high:.2f}).")
    return Figure2Result(figure=fig, model_id=model, regime=regime, role=role, n=len(data),
                         threshold=threshold, auc=result, curve=curve, data=data, alt_text=alt,
                         caption=caption)


def figure_bytes(figure: Figure, fmt: str, *, dpi: int = 150) -> bytes:
    """Render ``figure`` as PNG or SVG bytes, without timestamps or software metadata.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    fmt : {"png", "svg"}
        Output format.
    dpi : int, default 150
        Resolution of the PNG.

    Returns
    -------
    bytes
        The file's content.
    """
    check_option("fmt", fmt, FORMATS)
    import matplotlib

    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Software": None} if fmt == "png" else {"Date": None}
    with matplotlib.rc_context({"svg.hashsalt": "gvr-chf"}):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def save_figure(figure: Figure, stem: str | Path, *, formats: tuple[str, ...] = FORMATS,
                dpi: int = 150) -> list[Path]:
    """Write ``figure`` as ``<stem>.png`` and ``<stem>.svg`` (or the ``formats`` given).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    stem : str or pathlib.Path
        Path without suffix; its directory is created if needed.
    formats : tuple of {"png", "svg"}
        Formats to write.
    dpi : int, default 150
        Resolution of the PNG.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``formats``.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        path.write_bytes(figure_bytes(figure, fmt, dpi=dpi))
        paths.append(path)
    return paths
