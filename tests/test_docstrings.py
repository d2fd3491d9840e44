"""Every module with Examples in its docstrings has them run: pytest collects the packages with
--doctest-modules (pyproject.toml), so a new example runs without being listed anywhere."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("analysis", "data_schema", "modelling")


def test_doctests_are_collected_from_every_package_with_examples():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in options["addopts"]
    with_examples = sorted(p.relative_to(ROOT).parts[0] for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                           if ">>> " in p.read_text("utf-8"))
    assert set(with_examples) == set(PACKAGES)  # each package has examples ...
    assert set(PACKAGES) <= set(options["testpaths"])  # ... and pytest looks for them there
