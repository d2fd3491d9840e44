"""Figure 2: the plotted data are the inputs and analysis.roc's outputs; files are written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from analysis.errors import OneClassError
from analysis.figure2 import figure2, figure_bytes, save_figure
from analysis.roc import auc, roc_curve


def _predictions(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for model, predictor, regime, roles in (("mlp-correct", "mlp", "correct", ["train"] * 80 + ["test"] * 40),
                                            ("lin-correct", "linear", "correct", ["train"] * 80 + ["test"] * 40),
                                            ("mlp-over", "mlp", "overfitted", ["train"] * 90 + ["validation"] * 30)):
        n = len(roles)
        true = np.round(np.exp(rng.normal(5.8, 1.2, n)), 1)
        pred = np.exp(np.log(true) * 0.6 + rng.normal(2.3, 0.6, n))
        frames.append(pd.DataFrame({"image_id": [f"i{i:03d}" for i in range(n)], "model_id": model,
                                    "predictor": predictor, "regime": regime, "role": roles,
                                    "checkpoint_sha256": "a" * 64, "bnp_true_ng_l": true, "bnp_pred_ng_l": pred}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def preds():
    return _predictions()


@pytest.fixture(scope="module")
def fig2(preds):
    return figure2(preds)


def test_default_is_correct_mlp_on_test(preds, fig2):
    rows = preds[(preds["model_id"] == "mlp-correct") & (preds["role"] == "test")]
    assert (fig2.model_id, fig2.regime, fig2.role, fig2.n) == ("mlp-correct", "correct", "test", len(rows))
    assert fig2.data["image_id"].tolist() == rows["image_id"].tolist()


def test_scatter_shows_the_inputs(preds, fig2):
    ax_a = fig2.figure.axes[0]
    rows = preds[(preds["model_id"] == "mlp-correct") & (preds["role"] == "test")]
    scatters = [c for c in ax_a.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 1
    np.testing.assert_array_equal(scatters[0].get_offsets(), rows[["bnp_true_ng_l", "bnp_pred_ng_l"]].to_numpy())
    assert ax_a.get_xscale() == "log" and ax_a.get_yscale() == "log"
    dashed = [ln for ln in ax_a.get_lines() if ln.get_linestyle() == "--"]
    xs = {tuple(ln.get_xdata()) for ln in dashed}
    ys = {tuple(ln.get_ydata()) for ln in dashed}
    assert (100.0, 100.0) in xs and (100.0, 100.0) in ys  # axvline at x=100 and axhline at y=100


def test_roc_panel_is_roc_curve_output(preds, fig2):
    rows = preds[(preds["model_id"] == "mlp-correct") & (preds["role"] == "test")]
    y = rows["bnp_true_ng_l"] >= 100
    curve = roc_curve(y, rows["bnp_pred_ng_l"])
    line = fig2.figure.axes[1].get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), 1.0 - curve.specificity)
    np.testing.assert_array_equal(line.get_ydata(), curve.sensitivity)
    expected = auc(y, rows["bnp_pred_ng_l"], ci="delong")
    assert fig2.auc == expected
    legend = fig2.figure.axes[1].get_legend().get_texts()[0].get_text()
    assert legend == f"AUC {expected.auc:.2f} (95% CI: {expected.ci_low:.2f}, {expected.ci_high:.2f})"
    assert f"{expected.auc:.2f}" in fig2.alt_text and "ROC curve" in fig2.alt_text
    assert fig2.to_frame().loc[0, "auc"] == expected.auc


def test_model_and_role_options(preds):
    over = figure2(preds, model_id="mlp-over", role="validation")
    assert (over.regime, over.n) == ("overfitted", 30)
    with pytest.raises(ValueError, match="no predictions with role 'test'"):
        figure2(preds, model_id="mlp-over")
    with pytest.raises(ValueError, match="role must be one of"):
        figure2(preds, role="holdout")
    with pytest.raises(ValueError, match="not in predictions"):
        figure2(preds, model_id="nope")
    two_mlps = preds.assign(predictor="mlp")
    with pytest.raises(ValueError, match="several correctly trained models"):
        figure2(two_mlps)
    with pytest.raises(OneClassError):
        figure2(preds, threshold=1.0)


def test_threshold_moves_the_lines(preds):
    f = figure2(preds, threshold=250.0)
    ax_a = f.figure.axes[0]
    assert any(tuple(ln.get_xdata()) == (250.0, 250.0) for ln in ax_a.get_lines())
    assert f.auc.n_pos == int((f.data["bnp_true_ng_l"] >= 250).sum())


def test_files_written(fig2, tmp_path):
    paths = save_figure(fig2.figure, tmp_path / "sub" / "figure2")
    assert [p.name for p in paths] == ["figure2.png", "figure2.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:1000]
    assert b"<dc:date>" not in figure_bytes(fig2.figure, "svg")  # no timestamp
    with pytest.raises(ValueError, match="fmt must be one of"):
        figure_bytes(fig2.figure, "pdf")


@pytest.mark.parametrize("column, value", [("bnp_true_ng_l", np.nan), ("bnp_true_ng_l", 0.0),
                                           ("bnp_pred_ng_l", np.inf), ("bnp_pred_ng_l", -3.0)])
def test_a_missing_or_impossible_bnp_is_refused_naming_the_column_and_radiograph(preds, column, value):
    # A missing measured BNP used to count silently as a control (NaN >= 100 is False).
    bad = preds.copy()
    row = bad.index[(bad["model_id"] == "mlp-correct") & (bad["role"] == "test")][3]
    bad.loc[row, column] = value
    with pytest.raises(ValueError, match=rf"column '{column}' of model 'mlp-correct', role 'test'.* 1 row\(s\) "
                                         rf"are not, e\.g\. image_id {bad.loc[row, 'image_id']}"):
        figure2(bad)
