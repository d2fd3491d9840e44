"""The Examples sections of the statistics modules run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["analysis.errors", "analysis.roc", "analysis.agreement", "analysis.rank_tests",
           "analysis.contingency", "analysis.descriptive", "analysis.mixed_models"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
