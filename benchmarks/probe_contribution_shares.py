"""Do the two regimes' GVRs differ as their reliance does, counted as shares of the model's fall? (issue 15)

The fidelity stage's regime target compares per-GVR coefficients: how much of each feature a GVR removes. A
model that leans harder on a feature needs less of it removed for the same fall in its prediction, so the
overfitted model, which leans on body mass about twice as hard, can remove less of it and still owe more of
its fall to it. This probe counts, per GVR, each feature's part of the fall its model would make: the GVR's
coefficient on the feature times the fall that removing the whole feature makes on that radiograph
(``tables/gvr_truth.parquet``: ``coef_*`` and ``drop_*``), as a share of the parts' absolute sum. It then
compares the regimes' shares on the features that are not disease (Mann-Whitney U), beside their mean
reliance, and judges them as the manuscript judges the coefficients (:mod:`analysis.regimes`: which
reliance differs, the same way, P < 0.01). A diagnostic for whoever plans the next work: the manuscript's
target is unchanged.

    python benchmarks/probe_contribution_shares.py BUNDLE [BUNDLE ...]

Reads only; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.regimes import RegimeDifference, regime_target  # noqa: E402
from data_schema import Bundle  # noqa: E402
from data_schema.tables import INTERVENTION_FEATURES  # noqa: E402
from modelling.stages.fidelity import NON_DISEASE  # noqa: E402


def contribution_shares(truth: pd.DataFrame, features=INTERVENTION_FEATURES) -> pd.DataFrame:
    """Per GVR (row of `truth`), each feature's coefficient times its fall, over the absolute sum of those
    parts; NaN where a GVR owes its model nothing by the interventions."""
    parts = np.stack([truth[f"coef_{f}"].to_numpy(float) * truth[f"drop_{f}"].to_numpy(float) for f in features], 1)
    total = np.abs(parts).sum(axis=1, keepdims=True)
    shares = parts / np.where(total > 0, total, np.nan)
    return pd.DataFrame(shares, columns=list(features), index=truth.index)


def compare_regimes(truth: pd.DataFrame, features=NON_DISEASE) -> list[RegimeDifference]:
    """Per feature: both regimes' mean reliance and mean share (in the coefficients' places), with the
    two-sided Mann-Whitney P of the shares (None where both regimes' shares are all zero)."""
    shares = contribution_shares(truth)
    rows = []
    for f in features:
        by = {r: shares.loc[truth["regime"] == r, f].dropna() for r in ("correct", "overfitted")}
        relied = {r: float(truth.loc[truth["regime"] == r, f"drop_{f}"].mean()) for r in by}
        varies = all(len(v) for v in by.values()) and not all((v == 0).all() for v in by.values())
        rows.append(RegimeDifference(f, relied["correct"], relied["overfitted"],
                                     float(by["correct"].mean()) if len(by["correct"]) else float("nan"),
                                     float(by["overfitted"].mean()) if len(by["overfitted"]) else float("nan"),
                                     float(mannwhitneyu(by["correct"], by["overfitted"]).pvalue) if varies else None))
    return rows


def judged(target: dict) -> str:
    """:func:`analysis.regimes.regime_target`'s lists in words: where the GVRs differ the way the reliance does."""
    return (f"the same way with P < 0.01 on {', '.join(target['met_on']) or 'none'}, the same way without it on "
            f"{', '.join(target['same_way_only']) or 'none'}, the other way or not at all on "
            f"{', '.join(target['opposite']) or 'none'}")


def has_truth(root: Path) -> bool:
    """Whether the bundle at `root` has the fidelity stage's per-GVR truth; says what to run where it has not."""
    if "tables/gvr_truth.parquet" in Bundle(root, create=False).files:
        return True
    print(f"{root}: no tables/gvr_truth.parquet (run `gvr fidelity` first)", file=sys.stderr)
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for root in args.bundles:
        if not has_truth(root):
            return 2
        rows = compare_regimes(Bundle(root, create=False).read_table("gvr_truth"))
        target = regime_target(rows)
        print(f"{root}: reliance differs on {', '.join(target['differing']) or 'none'}; shares differ {judged(target)}")
        print(pd.DataFrame([{"feature": r.feature, "reliance_correct": r.reliance_correct,
                             "reliance_overfitted": r.reliance_overfitted, "share_correct": r.coefficient_correct,
                             "share_overfitted": r.coefficient_overfitted, "p": r.p, "differs": r.differs,
                             "same_way": r.same_way} for r in rows]).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
