"""What the manuscript's scripts (``reports/*.py``) read: the study bundle they render, its JSON and
images, and figures made from them. The scripts import :mod:`analysis` and :mod:`data_schema` only.

Which bundle: the environment variable ``GVR_BUNDLE``, else ``study/`` at the repository root
(``make reproduce``'s default output). A report never builds the bundle itself: the default study
takes 20 minutes or more, too long to hide inside a render; without a bundle it fails at once with
:class:`BundleMissingError`, which says to run ``make reproduce``.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

from data_schema import Bundle

__all__ = ["BUNDLE_ENV", "COLUMN_LABELS", "DEFAULT_BUNDLE", "NOT_APPLICABLE", "REPO_ROOT", "BundleMissingError",
           "bundle_path", "figure_from_images", "image_html", "labelled", "open_bundle", "read_json",
           "shown_path", "table_html"]

#: The repository: the reports' folder and the default bundle lie there.
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Environment variable naming the bundle the reports read.
BUNDLE_ENV = "GVR_BUNDLE"
#: The bundle read when ``GVR_BUNDLE`` is unset: ``make reproduce``'s default output.
DEFAULT_BUNDLE = REPO_ROOT / "study"


#: What a table shows where a row has no value (a baseline's validity, a share with nothing to measure on).
NOT_APPLICABLE = "–"


def table_html(frame, *, digits: int | None = None, **to_html) -> str:
    """`frame` as the manuscript's HTML table: columns of numbers and None made numbers (so that they round and
    align as numbers), rounded to `digits`, and every missing value, NaN or None, shown as :data:`NOT_APPLICABLE`.

    >>> import pandas as pd
    >>> page = table_html(pd.DataFrame({"a": [0.12345, None], "b": ["x", None]}), digits=2, index=False)
    >>> "<td>0.12</td>" in page and page.count("<td>–</td>") == 2
    True
    >>> "<td>-0" in table_html(pd.DataFrame({"a": [-0.0001, 0.5]}), digits=2)
    False
    >>> "<td>-0" in table_html(pd.DataFrame([[-0.0001, 1]], columns=["a", "a"]), digits=2)
    False
    """
    import pandas as pd

    def shown(column):
        if column.dtype == object:
            if column.map(lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))).all():
                return pd.to_numeric(column)  # None -> NaN
            return column.where(column.notna(), NOT_APPLICABLE)
        return column

    frame = frame.apply(shown) if len(frame.columns) else frame
    if digits is not None:
        frame = frame.round(digits)
    # -0.0 + 0.0 is 0.0: a value that rounds to zero shows no minus sign (column by column: names may repeat)
    frame = frame.apply(lambda c: c + 0.0 if pd.api.types.is_float_dtype(c) else c) if len(frame.columns) else frame
    return frame.to_html(na_rep=NOT_APPLICABLE, **to_html)


#: What a table of the manuscript calls a column (or an index level) of the bundle's tables: a reader sees words,
#: the bundle keeps names a program can use.
COLUMN_LABELS = {
    "model_id": "Model", "method": "Method", "regime": "Regime", "feature": "Feature",
    "intervention": "Intervention", "explanations": "Explanations",
    "pointing_game": "Pointing game", "pointing_rate": "Pointing game", "relevance_mass": "Relevance mass",
    "relevance_rank": "Relevance rank", "iou_top": "Top-k IoU", "sparseness": "Sparseness",
    "true_change_r": "Median r with the true change", "reached": "Reached", "valid": "Valid",
    "latent_distance": "Latent distance (Euclidean, code units)",
    "image_distance": "Image distance (RMS, intensity 0-1)", "healthy_kid": "KID of the healthy reconstructions",
    "mean_drop": "Reliance (mean fall)", "sd_drop": "SD of the fall", "gvr_mean_coefficient": "GVRs' mean coefficient",
    "share_heart": "Share: heart", "share_effusion": "Share: effusion", "share_opacity": "Share: opacity",
    "share_soft_tissue": "Share: soft tissue", "share_device": "Share: device", "share_markers": "Share: markers",
    "share_shortcut": "Share: shortcut", "share_outside": "Share: outside every mask",
    "share_disease": "Share: disease masks", "share_non_disease": "Share: masks not of disease",
}


def labelled(frame):
    """`frame` with the columns and index levels :data:`COLUMN_LABELS` names relabelled, at every level; other
    names are left as they are.

    Raises
    ------
    ValueError
        Where two columns would be shown under one label (``pointing_game`` and ``pointing_rate``).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"relevance_mass": [0.5], "other": [1]}, index=pd.Index(["gvr"], name="method"))
    >>> shown = labelled(frame)
    >>> list(shown.columns), shown.index.name
    (['Relevance mass', 'other'], 'Method')
    >>> labelled(pd.DataFrame(columns=["pointing_game", "pointing_rate"]))
    Traceback (most recent call last):
    ...
    ValueError: two columns would both be shown as ['Pointing game']
    """
    out = frame.rename(columns=lambda c: COLUMN_LABELS.get(c, c))
    if out.columns.duplicated().any() and not frame.columns.duplicated().any():
        raise ValueError(f"two columns would both be shown as {list(out.columns[out.columns.duplicated()])}")
    out.columns = out.columns.set_names([COLUMN_LABELS.get(n, n) for n in out.columns.names])
    out.index = out.index.set_names([COLUMN_LABELS.get(n, n) for n in out.index.names])
    return out


class BundleMissingError(FileNotFoundError):
    """No study bundle where the reports look for one."""


def bundle_path() -> Path:
    """The bundle the reports read: ``$GVR_BUNDLE`` (a relative path from the Quarto project's root while
    Quarto renders, else from the working directory), else ``study/`` at the repository root.

    Raises
    ------
    BundleMissingError
        When that folder holds no ``manifest.json``; the message says how to build the bundle.
    """
    env = os.environ.get(BUNDLE_ENV)
    path = Path(env).expanduser() if env else DEFAULT_BUNDLE
    if not path.is_absolute() and os.environ.get("QUARTO_PROJECT_ROOT"):  # relative to where quarto was run
        path = Path(os.environ["QUARTO_PROJECT_ROOT"]) / path
    if not (path / "manifest.json").is_file():
        source = f"${BUNDLE_ENV}={env}" if env else f"the default {DEFAULT_BUNDLE} ({BUNDLE_ENV} is unset)"
        raise BundleMissingError(
            f"no study bundle at {path} ({source}): run `make reproduce` to build {DEFAULT_BUNDLE}, or set "
            f"{BUNDLE_ENV} to a bundle built by `gvr reproduce --config ... --out DIR`")
    return path.resolve()


def shown_path(path: str | Path) -> str:
    """How a page names a bundle: relative to the project (``study``), else its folder's name.

    A rendered page is shared; the machine's absolute paths (a home directory, a user name) do not
    belong in it.
    """
    path = Path(path).resolve()
    for base in (REPO_ROOT, Path.cwd().resolve()):
        try:
            return path.relative_to(base).as_posix() or "."
        except ValueError:
            continue
    return path.name


def open_bundle() -> Bundle:
    """The :class:`data_schema.Bundle` at :func:`bundle_path`; in a notebook kernel, figures display as PNG.

    A matplotlib ``Figure`` left as a cell's value is shown as an image only once the kernel's
    inline formatter is registered (which importing pyplot would do as a side effect).
    """
    try:
        from IPython import get_ipython
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is not None:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    return Bundle(bundle_path())


def read_json(bundle: Bundle, relpath: str) -> Any:
    """A JSON file of the bundle, checked against its manifest hash first."""
    import json

    return json.loads(bundle.verify_file(relpath).read_text("utf-8"))


#: Table 2's mixed-effects models, as the analysis stage writes them.
MIXED_TABLE = "analysis/table2_mixed.csv"


def table2_mixed(bundle: Bundle):
    """Table 2's mixed-effects models (:data:`MIXED_TABLE`) as a DataFrame, checked to be of the reader
    assessments the bundle holds now.

    Raises
    ------
    RuntimeError
        When the analysis is missing or older than the assessments, or ran without the mixed models; the
        message says what to run.
    """
    import pandas as pd

    assessed = bundle.record("tables/reader_assessments.parquet").sha256
    if bundle.stages.get("analyse", {}).get("inputs", {}).get("tables/reader_assessments.parquet") != assessed:
        raise RuntimeError(f"{bundle.root / MIXED_TABLE} is missing or older than the reader assessments; "
                           f"rerun the analysis stage (`gvr reproduce {bundle.root}` or `gvr analyse {bundle.root}`)")
    if MIXED_TABLE not in bundle.files:
        raise RuntimeError(f"{bundle.root} was analysed without Table 2's mixed-effects models (`gvr analyse "
                           "--no-mixed-models`); the manuscript reports their P values: run "
                           f"`gvr analyse {bundle.root} --force` with R installed (`make setup` installs it)")
    table = pd.read_csv(bundle.verify_file(MIXED_TABLE))
    for column in ("p_value", "error"):  # a table where no feature could be fitted has only the reasons
        if column not in table.columns:
            table[column] = float("nan") if column == "p_value" else ""
    table["error"] = table["error"].fillna("").astype(str)
    return table


def image_html(bundle: Bundle, relpath: str, *, alt: str, width: int | None = None) -> str:
    """An ``<img>`` with the bundle's PNG or GIF embedded as base64 (hash checked first)."""
    data = bundle.verify_file(relpath).read_bytes()
    kind = "gif" if relpath.endswith(".gif") else "png"
    size = f' width="{width}"' if width else ""
    return (f'<img src="data:image/{kind};base64,{base64.b64encode(data).decode()}" '
            f'alt="{html.escape(alt)}"{size}>')


def figure_from_images(bundle: Bundle, rows: list[list[tuple[str, str]]], *, size: float = 2.4):
    """A matplotlib figure of bundle images in a grid: ``rows`` of ``(relpath, title)`` panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncol = max(len(r) for r in rows)
    images = [[bundle.read_image(rel) for rel, _ in row] for row in rows]
    # each row as tall as its tallest panel at `size` wide (a strip of six panels is one sixth as tall as wide;
    # a square cell left it floating in white)
    heights = [size * max((im.shape[0] / im.shape[1] for im in row), default=1.0) for row in images]
    fig = Figure(figsize=(size * ncol, sum(heights) + 0.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), ncol, squeeze=False, gridspec_kw={"height_ratios": heights})
    for i, row in enumerate(rows):
        for j in range(ncol):
            ax = axes[i][j]
            ax.set_axis_off()
            if j < len(row):
                image = images[i][j]
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
                ax.set_title(row[j][1], fontsize=9)
    return fig
