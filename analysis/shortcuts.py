"""The shortcut benchmark's figure (``gvr benchmark shortcuts``; tables shortcut_shares and shortcut_models)."""

from __future__ import annotations

import pandas as pd


def figure(shares: pd.DataFrame, models: pd.DataFrame):
    """A matplotlib Figure: per regime, each method's mean share on the shortcut (radiographs that carry
    it) against strength, with the models' measured reliance on the shortcut on a second axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    regimes = sorted(shares["regime"].unique())
    fig = Figure(figsize=(5.4 * len(regimes), 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(regimes), squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        g = shares[shares["regime"] == regime]
        for method, m in g.groupby("method", sort=True):
            mean = m.groupby("strength")["share_shortcut_carriers"].mean()
            ax.plot(100 * mean.index, mean.to_numpy(), marker="o", lw=2.4 if method == "gvr" else 1.4,
                    label=method.replace("_", " "))
        ax.set_xlabel("strength: % of positives carrying the marker")
        ax.set_ylabel("share of the explanation on the marker\n(radiographs carrying it)")
        ax.set_title(f"{regime} models")
        twin = ax.twinx()
        rel = models[models["regime"] == regime].groupby("strength")["shortcut_reliance"].mean()
        twin.plot(100 * rel.index, rel.to_numpy(), color="black", ls="--", label="reliance (right axis)")
        twin.set_ylabel("measured reliance: fall in log BNP\nwhen the marker is removed")
        lines, more = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def figure_png(shares: pd.DataFrame, models: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    figure(shares, models).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
