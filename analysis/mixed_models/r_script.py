"""Table 2's models as a plain R script (lme4 only) with its data, to refit them without Python."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.mixed_models.table2_tests import _check_assessments, _check_features_vary
from analysis.mixed_models.lme4 import _check_formula
from analysis.mixed_models.results import DEFAULT_FORMULA, REGIME_LEVELS


@dataclass(frozen=True)
class RScriptFiles:
    """Files written by :func:`write_r_script`.

    Attributes
    ----------
    data : pathlib.Path
        ``table2_models.csv``, the assessments with booleans as 0/1.
    script : pathlib.Path
        ``table2_models.R``, which reads ``data`` from its own directory.
    results : pathlib.Path
        ``table2_models_results.csv``, where the script writes its results (not yet present).
    """

    data: Path
    script: Path
    results: Path



#: The script's text, with @FORMULA@, @TERM@ and @LEVELS@ filled in by :func:`write_r_script`.
_R_SCRIPT = (Path(__file__).with_name("table2_models.R")).read_text("utf-8")


def _r_string(text: str) -> str:
    """An R double-quoted string literal for ``text``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_r_script(assessments: pd.DataFrame, directory: str | Path, *, formula: str = DEFAULT_FORMULA,
                   term: str = "regime") -> RScriptFiles:
    """Write the assessments and a plain R script that refits :func:`feature_tests`' models.

    Parameters
    ----------
    assessments : pandas.DataFrame
        As for :func:`feature_tests`.
    directory : str or pathlib.Path
        Where to write; created if needed. Existing files of the same names are replaced.
    formula, term : str
        As for :func:`feature_tests`.

    Returns
    -------
    RScriptFiles
        Paths of ``table2_models.csv``, ``table2_models.R`` and of the results file the script
        writes, ``table2_models_results.csv``.

    Raises
    ------
    ValueError
        As for :func:`feature_tests`'s checks of the table.
    ConstantResponseError
        If a feature was marked present in every assessment or in none.

    Notes
    -----
    ``Rscript table2_models.R`` needs only R and lme4. It fits each feature's model and the model
    without ``term`` with ``glmer`` (Laplace, ML), sets ``regime``'s reference level to
    ``"overfitted"`` as :func:`feature_tests` does, and writes the same columns (apart from
    ``converged``, plus ``r_version`` and ``lme4_version``), which agree with :func:`feature_tests`
    to numerical precision.

    References
    ----------
    Bates D, Maechler M, Bolker B, Walker S. Fitting linear mixed-effects models using lme4.
    J Stat Softw 2015;67(1):1-48. doi:10.18637/jss.v067.i01

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> df = pd.DataFrame({"reader": ["A", "B"], "round": [1, 1], "gvr_id": ["g1", "g2"],
    ...     "regime": ["correct", "overfitted"], "patient_id": ["p1", "p1"],
    ...     "feature": ["cardiomegaly"] * 2, "present": [True, False], "simulated": [True, True]})
    >>> files = write_r_script(df, tempfile.mkdtemp())
    >>> files.script.name, files.data.read_text().splitlines()[1]
    ('table2_models.R', 'A,1,g1,correct,p1,cardiomegaly,1,1')
    """
    df = _check_assessments(assessments)
    _check_formula(formula)
    if not isinstance(term, str):
        raise TypeError(f"term must be a string naming a fixed term; got {type(term).__name__}")
    _check_features_vary(df)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    table = df.copy()
    table["regime"] = table["regime"].astype(str)
    for name in table.columns:
        if pd.api.types.is_bool_dtype(table[name].dtype):
            table[name] = table[name].astype("int64")
    files = RScriptFiles(data=out / "table2_models.csv", script=out / "table2_models.R",
                         results=out / "table2_models_results.csv")
    # numbers written from text columns would come back as numbers in R: the script reads these as text
    text = [name for name in table.columns
            if not (pd.api.types.is_numeric_dtype(table[name].dtype) or pd.api.types.is_bool_dtype(table[name].dtype))]
    table.to_csv(files.data, index=False)
    script = (_R_SCRIPT.replace("@FORMULA@", _r_string(formula))
              .replace("@TERM@", _r_string(term))
              .replace("@LEVELS@", ", ".join(_r_string(level) for level in REGIME_LEVELS))
              .replace("@TEXT_COLUMNS@", ", ".join(f"{_r_string(name)} = \"character\"" for name in text)))
    files.script.write_text(script)
    return files
