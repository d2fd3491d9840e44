"""How much do the study's targets vary between trained studies? The targets of several bundles side by side.

One bundle judges a GVR method on one cohort and one training run; the rank agreement, for one, ranged from
-0.11 to 0.50 over three cohorts of the same method (benchmarks/RESULTS.md, session 20). Given bundles built with
the same profile at different seeds (``gvr reproduce --config C`` with ``seed:`` changed, or the shortcut
benchmark's ``seed-*/strength-000``), this lists every target of the training summary
(:func:`modelling.stages.train.development_checks`), of the fidelity summary
(:func:`analysis.fidelity_targets.fidelity_checks`) and of the baselines' audit (the relevance mass target,
:func:`analysis.fidelity_targets.baseline_checks`) per bundle, with how many bundles meet it and the mean and
range of its value. A target's name loses what differs between bundles (a count in brackets, the oracle's AUC),
so that the same target lines up across them. Reads the bundles, writes nothing into them.

    .venv/bin/python benchmarks/probe_seed_spread.py STUDY_A STUDY_B STUDY_C [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.fidelity_targets import baseline_checks, fidelity_checks  # noqa: E402
from data_schema import Bundle  # noqa: E402
from modelling.stages.train import development_checks  # noqa: E402


def target_key(name: str) -> str:
    """A target's name without what differs between bundles: bracketed counts or lists, the oracle's AUC.

    >>> target_key("mlp-correct: measured CTR lower in >= 90% with cardiomegaly and no large effusion (of 4)")
    'mlp-correct: measured CTR lower in >= 90% with cardiomegaly and no large effusion'
    >>> target_key("mlp correct: test AUC >= 90% of oracle 0.895")
    'mlp correct: test AUC >= 90% of oracle'
    """
    return re.sub(r" of oracle \d+(\.\d+)?", " of oracle", re.sub(r" \([^()]*\)", "", name)).strip()


def targets(root: Path) -> dict[str, dict]:
    """Every target of one bundle, by :func:`target_key`: ``{"value": float | None, "met": bool, "measurable": bool}``."""
    bundle = Bundle(root, create=False)
    out = {}
    for path, judge in (("train/summary.json", development_checks), ("fidelity/summary.json", fidelity_checks),
                        ("baselines/audit.json", baseline_checks)):
        if path in bundle.files:
            for name, t in judge(json.loads(bundle.verify_file(path).read_text())).items():
                out[target_key(name)] = {"value": t["value"], "met": bool(t["met"]),
                                         "measurable": t.get("measurable", True)}
    return out


def spread(roots: list[Path]) -> list[dict]:
    """One row per target found in any bundle: its value in each (None where a bundle lacks it, or has nothing
    to measure it on), how many meet it of those that could measure it ("judged": a target with nothing to
    measure it on is neither met nor missed, as ``gvr fidelity`` prints it), and the mean, least and greatest of
    the values that are numbers."""
    per = [targets(r) for r in roots]
    names = list(dict.fromkeys(name for t in per for name in t))
    rows = []
    for name in names:
        found = [t.get(name) for t in per]
        values = [f["value"] for f in found if f is not None and isinstance(f["value"], (int, float))]
        rows.append({"target": name, "values": [None if f is None else f["value"] for f in found],
                     "met": sum(1 for f in found if f is not None and f["measurable"] and f["met"]),
                     "judged": sum(1 for f in found if f is not None and f["measurable"]),
                     "mean": sum(values) / len(values) if values else None,
                     "least": min(values) if values else None, "greatest": max(values) if values else None})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = spread(args.bundles)

    def shown(v):
        return "-" if v is None else f"{v:.3f}"

    print("| target | " + " | ".join(b.name for b in args.bundles) + " | met | mean (range) |")
    print("|---|" + "---|" * len(args.bundles) + "---|---|")
    for r in rows:
        print(f"| {r['target']} | " + " | ".join(shown(v) for v in r["values"])
              + f" | {r['met']} of {r['judged']} | {shown(r['mean'])} ({shown(r['least'])} to {shown(r['greatest'])}) |")
    if args.json:
        args.json.write_text(json.dumps({"bundles": [str(b) for b in args.bundles], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
