"""The layout's one rule, read from the imports: domain code never reaches up into the stages, the
command line or the analysis; stages never import the command line; reports import only analysis and
data_schema; analysis and data_schema import nothing of modelling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ("modelling.cohort", "modelling.nets", "modelling.explain", "modelling.readers")
SHARED = ("modelling.config", "modelling.progress")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (relative imports resolved)."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    inside = path.resolve().is_relative_to(ROOT)
    package = "" if not inside else _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


RULES = [
    # (who, must never import, why)
    (DOMAIN, ("modelling.stages", "modelling.cli", "analysis"), "domain code stays below the stages and the analysis"),
    (SHARED, ("modelling.cohort", "modelling.nets", "modelling.explain", "modelling.readers", "modelling.stages",
              "modelling.cli", "analysis"), "config and progress are used by all and use none"),
    (("modelling.stages",), ("modelling.cli",), "stages never import the command line"),
    (("analysis",), ("modelling",), "the analysis works on tables, not on the modelling code"),
    (("data_schema",), ("modelling", "analysis"), "the bundle's format is the ground floor"),
]


@pytest.mark.parametrize(("who", "never", "why"), RULES, ids=[r[2] for r in RULES])
def test_imports_run_one_way(who, never, why):
    broken = []
    for path in _sources("modelling", "analysis", "data_schema"):
        if not _within(_module(path), who):
            continue
        bad = sorted(name for name in _imports(path) if _within(name, never))
        if bad:
            broken.append(f"{path.relative_to(ROOT)} imports {', '.join(bad)}")
    assert not broken, f"{why}:\n" + "\n".join(broken)


def test_reports_import_only_analysis_and_data_schema():
    broken = [f"{p.relative_to(ROOT)} imports {name}" for p in _sources("reports") for name in sorted(_imports(p))
              if _within(name, ("modelling",))]
    assert not broken, "\n".join(broken)


def test_no_stage_imports_another_stage_except_through_artifacts():
    """Each stage reads earlier stages' outputs through modelling.stages.artifacts, not their modules;
    only the pipeline, which runs them all, the shortcut benchmark, which runs them for every cohort it
    draws, and the real-data cohort stage (the cohort stage's name) do."""
    allowed = {"modelling.stages.pipeline", "modelling.stages.shortcuts", "modelling.stages.ingest"}
    broken = []
    for path in _sources("modelling/stages"):
        me = _module(path)
        if me in allowed or path.name == "__init__.py":
            continue
        others = sorted(name for name in _imports(path) if _within(name, ("modelling.stages",))
                        and not _within(name, ("modelling.stages.artifacts", me)) and name != "modelling.stages")
        if others:
            broken.append(f"{path.relative_to(ROOT)} imports {', '.join(others)}")
    assert not broken, "\n".join(broken)


def test_the_rules_catch_a_violation(tmp_path):
    """The reader of imports is not blind: a domain module importing a stage is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from modelling.stages.train import build_training\n")
    assert "modelling.stages.train" in _imports(bad)


def test_only_the_stages_open_a_bundle():
    """Domain code works on tables, arrays and images handed to it; the stages read and write the bundle."""
    broken = []
    for path in _sources("modelling"):
        if not _within(_module(path), DOMAIN + SHARED):
            continue
        opened = sorted(name for name in _imports(path)
                        if name in ("data_schema.Bundle", "data_schema.Stage") or _within(name, ("data_schema.bundle",)))
        if opened:
            broken.append(f"{path.relative_to(ROOT)} imports {', '.join(opened)}")
    assert not broken, "\n".join(broken)
