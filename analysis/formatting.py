"""How numbers and tables are shown: the study's one formatting module (display only; results are
never rounded before they reach here).

- :func:`format_p`, :func:`fmt_p`: P values as Radiology prints them;
- :func:`format_count_percent`: ``"64/200 (32)"``;
- :func:`fmt_ci`: an AUC with its confidence interval;
- :func:`render_html`, :func:`render_csv`: a display table as HTML (caption, notes) or CSV.
"""

from __future__ import annotations

import html
import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MISSING", "fmt_ci", "fmt_p", "format_count_percent", "format_p", "render_csv", "render_html"]

MISSING = "…"  # what the paper prints where a statistic does not apply (no BNP in the unlabelled set)


def format_count_percent(count: int, total: int, *, digits: int = 0) -> str:
    """``"count/total (percent)"`` with ``digits`` decimals, trailing zeros dropped (``"64/200 (32)"``).

    Examples
    --------
    >>> format_count_percent(153, 200, digits=1), format_count_percent(64, 200, digits=1)
    ('153/200 (76.5)', '64/200 (32)')

    A half rounds up, in every row alike (binary floating point would print 44.5 % as 44 and 45.5 % as 46):

    >>> format_count_percent(890, 2000), format_count_percent(91, 200)
    ('890/2000 (45)', '91/200 (46)')
    """
    if total == 0:
        return f"{count}/{total} ({MISSING})"
    scaled = Fraction(100 * count * 10 ** digits, total)
    pct = f"{Decimal(math.floor(scaled + Fraction(1, 2))).scaleb(-digits):.{digits}f}"
    if "." in pct:
        pct = pct.rstrip("0").rstrip(".")
    return f"{count}/{total} ({pct})"


#: Where a P value's printed digits must fall on the same side as the P value itself: the study's level of
#: significance (the paper: "P < .05 was considered to indicate a statistically significant difference") and the
#: point below which three decimals are printed.
_P_THRESHOLDS = (0.05, 0.01)


def format_p(p: float) -> str:
    """A p-value as Radiology prints it: ``"<.001"``, ``".003"`` (below .01) or ``".38"``, with as many more
    digits as keep it on its side of .05 and .01: .0499 is ``".0499"``, not ``".05"``, which would read as
    not significant, and .00995 ``".00995"``, not ``".010"``.

    Examples
    --------
    >>> format_p(0.0004), format_p(0.0031), format_p(0.381), format_p(1.0)
    ('<.001', '.003', '.38', '>.99')
    >>> format_p(0.0499), format_p(0.05), format_p(0.0549), format_p(0.00995), format_p(0.0104)
    ('.0499', '.05', '.05', '.00995', '.01')
    """
    if not np.isfinite(p):
        return "NA"
    if p < 0.001:
        return "<.001"
    if p > 0.99:
        return ">.99"
    digits = 3 if p < 0.01 else 2
    while digits < 8 and any(p < t <= round(p, digits) for t in _P_THRESHOLDS):
        digits += 1
    return f"{p:.{digits}f}".lstrip("0")


def times(n: int) -> str:
    """How many times, in words for one and two.

    >>> times(1), times(2), times(3)
    ('once', 'twice', '3 times')
    """
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def fmt_p(p: float) -> str:
    """A P value after "P" in a sentence, as Radiology prints it: ``"< .001"``, ``"= .04"``, ``"> .99"``;
    ``"not computed"`` for a missing one.

    >>> [f"P {fmt_p(p)}" for p in (1e-4, 0.04, 0.995, float("nan"))]
    ['P < .001', 'P = .04', 'P > .99', 'P not computed']
    """
    if not np.isfinite(p):
        return "not computed"
    text = format_p(p)
    return f"{text[0]} {text[1:]}" if text.startswith(("<", ">")) else f"= {text}"


def fmt_ci(result: Any, digits: int = 2) -> str:
    """``"0.82 (95% CI: 0.78, 0.86)"`` from an :class:`analysis.roc.AucResult`; where the interval has no
    width (cases and controls completely separated, or every one scored alike, so DeLong's variance is 0) it
    says so instead of printing ``(95% CI: 1.00, 1.00)`` or ``(95% CI: 0.50, 0.50)``.

    >>> from analysis.roc import auc
    >>> fmt_ci(auc([0, 0, 1, 1, 0, 1], [0.5] * 6))
    "0.50 (DeLong's variance is 0, as when every case and control is scored alike: no interval)"
    """
    if result.ci_high - result.ci_low == 0 and result.auc in (0.0, 1.0):
        return (f"{result.auc:.{digits}f} (cases and controls completely separated: DeLong's interval has no "
                "width)")
    if result.ci_high - result.ci_low == 0:  # every case's and control's placement 1/2: one score for all
        return (f"{result.auc:.{digits}f} (DeLong's variance is 0, as when every case and control is scored alike: "
                "no interval)")
    return (f"{result.auc:.{digits}f} ({100 * result.level:g}% CI: {result.ci_low:.{digits}f}, "
            f"{result.ci_high:.{digits}f})")


def _labels(index: pd.Index) -> list[tuple[str, ...]]:
    if isinstance(index, pd.MultiIndex):
        return [tuple(str(x) for x in t) for t in index]
    return [(str(x),) for x in index]


def render_html(display: pd.DataFrame, *, caption: str, notes: tuple[str, ...] | list[str] = (),
                table_id: str | None = None) -> str:
    """A display table as a plain HTML ``<table>`` with a ``<caption>`` and notes in its footer.

    Parameters
    ----------
    display : pandas.DataFrame
        Strings; columns may be a two-level MultiIndex (a header row of groups with ``colspan``),
        the index one or more levels (one ``<th>`` column per level).
    caption : str
        Caption text.
    notes : sequence of str
        Notes, one ``<p>`` each, in a ``<tfoot>`` cell spanning the table.
    table_id : str, optional
        ``id`` of the table (a Quarto label such as ``"tbl-table1"``).

    Returns
    -------
    str
        HTML text; every value is escaped.

    Notes
    -----
    Under a two-level column header, a non-empty cell followed by empty cells of the same column
    group spans them (the paper's pooled rows).

    Examples
    --------
    >>> import pandas as pd
    >>> print(render_html(pd.DataFrame({"A": ["1"]}, index=["x"]), caption="T").splitlines()[0])
    <table class="gvr-table"><caption>T</caption>
    """
    e = html.escape
    cols = _labels(display.columns)
    two = len(cols[0]) > 1 if cols else False
    idx_names = [e(str(n)) if n is not None else "" for n in display.index.names]
    attrs = f' id="{e(table_id)}"' if table_id else ""
    out = [f'<table class="gvr-table"{attrs}><caption>{e(caption)}</caption>', "<thead>"]
    if two:
        out.append("<tr>" + "".join(f'<th rowspan="2">{n}</th>' for n in idx_names))
        groups: list[list[Any]] = []
        for c in cols:
            if groups and groups[-1][0] == c[0]:
                groups[-1][1] += 1
            else:
                groups.append([c[0], 1])
        out[-1] += "".join(f'<th colspan="{k}">{e(g)}</th>' for g, k in groups) + "</tr>"
        out.append("<tr>" + "".join(f"<th>{e(c[1])}</th>" for c in cols) + "</tr>")
    else:
        out.append("<tr>" + "".join(f"<th>{n}</th>" for n in idx_names)
                   + "".join(f"<th>{e(c[0])}</th>" for c in cols) + "</tr>")
    out.append("</thead>")
    out.append("<tbody>")
    for label, values in zip(_labels(display.index), display.itertuples(index=False)):
        cells = [str(x) for x in values]
        row = "<tr>" + "".join(f"<th>{e(x)}</th>" for x in label)
        j = 0
        while j < len(cells):
            span = 1
            if two and cells[j] != "":
                while j + span < len(cells) and cells[j + span] == "" and cols[j + span][0] == cols[j][0]:
                    span += 1
            # a cell across its group's columns (Table 2's pooled result) is centred under the group, not
            # right-aligned under its last column, where it read as the second reading's
            row += (f'<td colspan="{span}" style="text-align: center">' if span > 1 else "<td>") + e(cells[j]) + "</td>"
            j += span
        out.append(row + "</tr>")
    out.append("</tbody>")
    if notes:
        width = len(idx_names) + len(cols)
        out.append(f'<tfoot><tr><td colspan="{width}">' + "".join(f"<p>{e(n)}</p>" for n in notes)
                   + "</td></tr></tfoot>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def render_csv(display: pd.DataFrame) -> str:
    """A display table as CSV text; two-level column labels are joined with ``" - "``.

    Examples
    --------
    >>> import pandas as pd
    >>> render_csv(pd.DataFrame({"A": ["1"]}, index=pd.Index(["x"], name="k"))).splitlines()
    ['k,A', 'x,1']
    """
    frame = display.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [" - ".join(str(x) for x in c) for c in frame.columns]
    return frame.to_csv(lineterminator="\n")
