"""Mixed-effects logistic regression for the blinded GVR reading (the paper's Table 2).

The paper tested "the null hypothesis that the frequency of highlighted features was independent of
the model (correctly trained or overfitted) from which the GVR originated, taking into account fixed
effects from different readers and patients" with R's lme4. This module fits the same models with
lme4's ``glmer`` (Laplace approximation, maximum likelihood) in the R session rpy2 embeds, or through
pymer4 (``engine="pymer4"``, same numbers, slower), and writes a plain R script that refits them
without Python.

- :func:`glmer` fits any lme4 formula and returns a :class:`GlmerResult`.
- :func:`likelihood_ratio_test` compares a model with the model that drops one fixed term, as R's
  ``anova(reduced, full)``.
- :func:`feature_tests` fits one model per feature of a reader-assessments table (Table 2).
- :func:`write_r_script` writes that table and an R script that refits the models in R.

Conventions
-----------
- ``regime`` is a factor whose reference level is ``"overfitted"`` (:data:`REGIME_LEVELS`), in
  Python and in the written R script alike: the regime coefficient is ``regimecorrect``, and its
  odds ratio is odds(feature highlighted | correctly trained model) / odds(... | overfitted model),
  above 1 when the correctly trained model highlights the feature more often.
- Boolean columns are passed to R as 0/1 integers.
- Confidence intervals are Wald intervals on the log-odds scale, exponentiated:
  ``exp(estimate +- qnorm(0.975) * se)``; p-values of fixed effects are Wald z tests, as in
  ``summary(glmer(...))``.
- lme4's convergence and singular-fit messages, optimizer warnings, and anything R writes to its
  console during the fit are kept, as strings, in the result's ``warnings`` and are also issued as a
  :class:`GlmerFitWarning`; they are never dropped. R starts on the first fit, not at import.

References
----------
Bates D, Maechler M, Bolker B, Walker S. Fitting linear mixed-effects models using lme4.
J Stat Softw 2015;67(1):1-48. doi:10.18637/jss.v067.i01

Seah JCY, Tang JSN, Kitchen A, Gaillard F, Dixon AF. Chest radiographs in congestive heart failure:
visualizing neural network learning. Radiology 2019;290(2):514-522. doi:10.1148/radiol.2018180887

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"patient_id": np.repeat([f"p{i:02d}" for i in range(40)], 8),
...                    "regime": np.tile(["correct", "overfitted"], 160)})
>>> eta = np.where(df["regime"] == "correct", 1.0, -1.0) + np.repeat(rng.normal(0, 1.5, 40), 8)
>>> df["present"] = rng.random(320) < 1 / (1 + np.exp(-eta))
>>> res = glmer("present ~ regime + (1 | patient_id)", df)
>>> bool(res.coefficient("regimeoverfitted")["estimate"] < 0), res.singular
(True, False)
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import types
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._checks import check_option
from analysis.errors import UndefinedStatisticError

__all__ = [
    "ASSESSMENT_COLUMNS",
    "DEFAULT_FORMULA",
    "ENGINES",
    "REGIME_LEVELS",
    "ConstantResponseError",
    "FeatureTermError",
    "p_value_caution",
    "GlmerError",
    "GlmerFitWarning",
    "GlmerResult",
    "LikelihoodRatioResult",
    "RScriptFiles",
    "feature_tests",
    "glmer",
    "likelihood_ratio_test",
    "write_r_script",
]

#: Levels of ``regime``, reference level first (the regime coefficient is ``regimecorrect``).
REGIME_LEVELS: tuple[str, str] = ("overfitted", "correct")
#: The paper's model: regime and reader as fixed effects, a random intercept per patient.
DEFAULT_FORMULA = "present ~ regime + reader + (1 | patient_id)"
#: Columns :func:`feature_tests` needs (those of ``data_schema``'s reader_assessments table).
ASSESSMENT_COLUMNS = ("reader", "round", "gvr_id", "regime", "patient_id", "feature", "present", "simulated")
#: Wald interval multiplier, qnorm(0.975).
_Z975 = float(stats.norm.ppf(0.975))
_FAMILIES = ("binomial",)
#: Ways to reach lme4: one R call through rpy2 (the default), or pymer4's ``Lmer`` (slower: its
#: ``fit`` also computes intervals, random effects, fitted values and residuals on every call).
ENGINES: tuple[str, str] = ("rpy2", "pymer4")
_SINGULAR_MESSAGE = "boundary (singular) fit: see help('isSingular')"
_FIXED_COLUMNS = ["term", "estimate", "se", "z", "p_value", "odds_ratio", "or_ci_low", "or_ci_high"]
_RESULT_COLUMNS = [
    "feature", "term", "coefficient", "n_obs", "n_present", "estimate", "se", "z", "p_value",
    "odds_ratio", "or_ci_low", "or_ci_high", "lrt_chi2", "lrt_df", "lrt_p_value", "singular",
    "converged", "warnings", "caution",
]

_NOT_CONVERGED = ("failed to converge", "convergence code", "did not converge", "iteration limit")
_SINGULAR = ("singular",)
_CURVATURE = ("nearly unidentifiable", "Hessian", "not positive definite", "eigenvalue")


def _kinds(messages: Sequence[str]) -> set[str]:
    kinds = set()
    for m in messages:
        if any(k in m for k in _NOT_CONVERGED):
            kinds.add("not_converged")
        elif any(k in m for k in _SINGULAR):
            kinds.add("singular")
        elif any(k in m for k in _CURVATURE):
            kinds.add("curvature")
        else:
            kinds.add("other")
    return kinds


def p_value_caution(full_warnings: Sequence[str], reduced_warnings: Sequence[str] = (), *,
                    p_value: float, lrt_p_value: float | None = None) -> str:
    """What lme4's messages mean for a term's Wald and likelihood-ratio p-values, in one sentence.

    Parameters
    ----------
    full_warnings, reduced_warnings : sequence of str
        lme4's messages for the model with the term (the Wald test's) and without it (used only by
        the likelihood-ratio test).
    p_value : float
        The term's Wald p-value, from the full model.
    lrt_p_value : float, optional
        The likelihood-ratio p-value.

    Returns
    -------
    str
        Empty when there is nothing to say; otherwise what each message means for which p-value.

    Examples
    --------
    >>> p_value_caution([], ["Model failed to converge with max|grad| = 0.05 (tol = 0.002, component 1)"],
    ...                 p_value=0.0012, lrt_p_value=0.0009)
    'the reduced model (without the term) did not converge: the likelihood-ratio P = 0.0009 may be off; the Wald P = 0.0012 does not use that fit'
    """
    wald = f"the Wald P = {p_value:.2g}"
    lrt = f"the likelihood-ratio P = {lrt_p_value:.2g}" if lrt_p_value is not None else "the likelihood-ratio P"
    parts = []
    full = _kinds(full_warnings)
    if "not_converged" in full:
        parts.append(f"the model did not converge: {wald} may be off; refit with another optimizer "
                     "(lme4's glmerControl) before relying on it")
    if "singular" in full:
        parts.append(f"a random-effect variance is estimated at 0 (singular fit): {wald} is that of the "
                     "model without that random effect")
    if "curvature" in full:
        parts.append(f"the curvature at the estimate is poorly determined: the Wald SE, and so {wald}, "
                     f"may be imprecise; {lrt} does not use it")
    if "other" in full:
        parts.append(f"check the fit before relying on {wald}")
    reduced = _kinds(reduced_warnings)
    if reduced & {"not_converged", "curvature", "other"}:
        what = "did not converge" if "not_converged" in reduced else "is not well determined"
        parts.append(f"the reduced model (without the term) {what}: {lrt} may be off; {wald} does not use "
                     "that fit")
    return "; ".join(parts)


class ConstantResponseError(UndefinedStatisticError):
    """The response is the same for every observation, so no logistic model can be estimated."""


class FeatureTermError(ValueError):
    """The term to test is not a fixed-effect term with exactly one coefficient in the fitted model."""


class GlmerError(RuntimeError):
    """lme4 stopped with an error; the message carries R's error text and console output."""


class GlmerFitWarning(UserWarning):
    """lme4 reported a convergence problem, a singular fit, or another message during a fit."""


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GlmerResult:
    """A fitted generalized linear mixed model (lme4 ``glmer``, Laplace approximation, ML).

    Attributes
    ----------
    formula : str
        The lme4 formula as given.
    family : str
        The response family (``"binomial"``, logit link).
    n_obs : int
        Number of observations used (``nobs``; for a ``cbind(successes, failures)`` response, rows).
    n_groups : Mapping[str, int]
        Number of levels of each random-effect grouping factor.
    fixed_effects : pandas.DataFrame
        One row per coefficient: ``term`` (R's coefficient name, e.g. ``regimecorrect``),
        ``estimate`` (log-odds), ``se``, ``z`` (Wald), ``p_value`` (two-sided Wald),
        ``odds_ratio`` = exp(estimate), ``or_ci_low``/``or_ci_high`` = 95 % Wald interval
        exp(estimate +- qnorm(0.975) * se).
    random_effects : pandas.DataFrame
        One row per random-effect variance: ``group``, ``name`` (e.g. ``(Intercept)``),
        ``variance``, ``sd``.
    random_correlations : pandas.DataFrame
        Correlations between random effects of one group (``group``, ``name1``, ``name2``,
        ``correlation``); empty for random intercepts only.
    loglik : float
        Log-likelihood at the estimates (Laplace approximation).
    aic, bic : float
        Akaike and Bayesian information criteria.
    df : int
        Number of estimated parameters (fixed effects plus variance components), R's
        ``attr(logLik(fit), "df")``.
    singular : bool
        ``lme4::isSingular(fit)``: a variance estimated at (or a correlation at +-1 on) the boundary.
    converged : bool
        False when the optimizer returned a non-zero code or lme4's convergence checks emitted any
        message other than the singular-fit note.
    warnings : tuple of str
        lme4's convergence messages (``optinfo$conv$lme4$messages``, including the singular-fit
        note), optimizer warnings (``optinfo$warnings``), the singular-fit note whenever
        ``singular`` is true, and R console output written during the fit; empty when clean.

    Notes
    -----
    The DataFrame attributes are not copied on access; treat them as read-only.
    """

    formula: str
    family: str
    n_obs: int
    n_groups: Mapping[str, int]
    fixed_effects: pd.DataFrame
    random_effects: pd.DataFrame
    random_correlations: pd.DataFrame
    loglik: float
    aic: float
    bic: float
    df: int
    singular: bool
    converged: bool
    warnings: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        """Return a one-row summary (formula, sizes, fit statistics, flags, warnings joined by "; ").

        The coefficients are in :attr:`fixed_effects` and the variances in :attr:`random_effects`.
        """
        return pd.DataFrame([{
            "formula": self.formula,
            "family": self.family,
            "n_obs": self.n_obs,
            "n_fixed": len(self.fixed_effects),
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "df": self.df,
            "singular": self.singular,
            "converged": self.converged,
            "n_warnings": len(self.warnings),
            "warnings": "; ".join(self.warnings),
        }])

    def coefficient(self, term: str) -> pd.Series:
        """Return the row of :attr:`fixed_effects` for coefficient ``term`` (e.g. ``regimecorrect``).

        Raises
        ------
        KeyError
            If the model has no such coefficient; the message lists those it has.
        """
        rows = self.fixed_effects[self.fixed_effects["term"] == term]
        if rows.empty:
            raise KeyError(f"no coefficient {term!r}; the model has {list(self.fixed_effects['term'])}")
        return rows.iloc[0]


@dataclass(frozen=True, eq=False)
class LikelihoodRatioResult:
    """Likelihood-ratio test of one fixed term, as R's ``anova(reduced, full)`` for glmer fits.

    Attributes
    ----------
    term : str
        The fixed term dropped from the full model.
    formula, reduced_formula : str
        The full model's formula and the reduced one (R's ``update(formula, . ~ . - term)``).
    n_obs : int
        Observations in both fits.
    chi2 : float
        2 * max(0, loglik_full - loglik_reduced).
    df : int
        Difference in the number of estimated parameters.
    p_value : float
        Upper tail of the chi-square distribution with ``df`` degrees of freedom at ``chi2``.
    loglik_full, loglik_reduced : float
        Log-likelihoods (Laplace approximation, ML) of the two fits.
    warnings : tuple of str
        Both fits' warnings, each prefixed with ``"full: "`` or ``"reduced: "``.
    full, reduced : GlmerResult
        The two fits.
    """

    term: str
    formula: str
    reduced_formula: str
    n_obs: int
    chi2: float
    df: int
    p_value: float
    loglik_full: float
    loglik_reduced: float
    warnings: tuple[str, ...]
    full: GlmerResult = field(repr=False)
    reduced: GlmerResult = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """Return a one-row tidy summary of the test (without the two fits)."""
        return pd.DataFrame([{
            "term": self.term,
            "formula": self.formula,
            "reduced_formula": self.reduced_formula,
            "n_obs": self.n_obs,
            "chi2": self.chi2,
            "df": self.df,
            "p_value": self.p_value,
            "loglik_full": self.loglik_full,
            "loglik_reduced": self.loglik_reduced,
            "warnings": "; ".join(self.warnings),
        }])


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


# --------------------------------------------------------------------------------------------------
# The R session (started on first use)
# --------------------------------------------------------------------------------------------------

_R_HELPERS = r"""
local({
info <- function(m) {
  list(singular = lme4::isSingular(m),
       opt_code = as.integer(m@optinfo$conv$opt),
       lme4_messages = as.character(unlist(m@optinfo$conv$lme4$messages)),
       optimizer_warnings = as.character(unlist(m@optinfo$warnings)),
       df = as.integer(attr(stats::logLik(m), "df")),
       nobs = as.integer(stats::nobs(m)))
}
list(
  info = info,
  fit = function(formula, data) {
    m <- lme4::glmer(stats::as.formula(formula), data = data, family = stats::binomial)
    beta <- lme4::fixef(m)
    se <- sqrt(diag(as.matrix(stats::vcov(m))))
    z <- unname(beta / se)
    ll <- stats::logLik(m)
    vc <- as.data.frame(lme4::VarCorr(m), order = "cov.last")
    groups <- lme4::ngrps(m)
    c(list(model = m, term = names(beta), estimate = unname(beta), se = unname(se), z = z,
           p_value = 2 * stats::pnorm(abs(z), lower.tail = FALSE),
           vc_group = as.character(vc$grp), vc_var1 = as.character(vc$var1),
           vc_var2 = as.character(vc$var2), vc_vcov = vc$vcov, vc_sdcor = vc$sdcor,
           loglik = as.numeric(ll), aic = stats::AIC(m), bic = stats::BIC(m),
           group_names = names(groups), group_sizes = as.integer(groups)),
      info(m))
  },
  data_frame = function(columns, n) {
    structure(columns, class = "data.frame", row.names = c(NA_integer_, -as.integer(n)))
  },
  fixed_terms = function(formula) {
    attr(stats::terms(lme4::nobars(stats::as.formula(formula))), "term.labels")
  },
  drop_term = function(formula, term) {
    deparse1(stats::update(stats::as.formula(formula), stats::as.formula(paste(". ~ . -", term))))
  },
  formula_variables = function(formula) all.vars(stats::as.formula(formula)),
  term_coefficients = function(m, term) {
    mm <- stats::model.matrix(m)
    labels <- attr(stats::terms(m, fixed.only = TRUE), "term.labels")
    colnames(mm)[attr(mm, "assign") == match(term, labels)]
  }
)
})
"""


@functools.cache
def _session() -> types.SimpleNamespace:
    """Start R through rpy2 once per process, load lme4 and return handles to what the fits use."""
    from rpy2 import rinterface, robjects
    from rpy2.rinterface_lib import callbacks
    from rpy2.rinterface_lib.embedded import RRuntimeError
    from rpy2.robjects.packages import importr

    # Naming the library that holds each package keeps R from warning about every empty library
    # directory on .libPaths() ("library '/usr/local/lib/R/site-library' contains no packages").
    where = robjects.r("function(name) dirname(find.package(name))")
    packages = {name: importr(name, lib_loc=str(where(name)[0])) for name in ("lme4",)}
    helpers = robjects.r(_R_HELPERS)
    return types.SimpleNamespace(
        robjects=robjects,
        rinterface=rinterface,
        callbacks=callbacks,
        RRuntimeError=RRuntimeError,
        importr=importr,
        packages=packages,
        fit=helpers.rx2("fit"),
        data_frame=helpers.rx2("data_frame"),
        info=helpers.rx2("info"),
        fixed_terms=helpers.rx2("fixed_terms"),
        drop_term=helpers.rx2("drop_term"),
        term_coefficients=helpers.rx2("term_coefficients"),
        formula_variables=helpers.rx2("formula_variables"),
    )


@functools.cache
def _pymer4() -> types.SimpleNamespace:
    """Import pymer4 (for ``engine="pymer4"``) once R is up; return its Lmer class and module."""
    sess = _session()
    from pymer4.models import Lmer

    sess.robjects.r("invisible(NULL)")  # R prints the import's deferred warnings here, not in a fit
    return types.SimpleNamespace(Lmer=Lmer, module=sys.modules[Lmer.__module__])


@functools.lru_cache(maxsize=256)
def _formula_variables(formula: str) -> tuple[str, ...]:
    """The variables a formula uses (R's ``all.vars``)."""
    return tuple(str(v) for v in _session().formula_variables(formula))


@contextlib.contextmanager
def _captured_r_console(sess: types.SimpleNamespace) -> Iterator[list[str]]:
    """Collect what R writes to its error/warning console inside the block, then restore.

    R prints deferred warnings at the end of the next top-level evaluation, so a no-op is evaluated
    before the console writer is restored to flush them into the buffer.
    """
    buffer: list[str] = []
    previous = sess.callbacks.consolewrite_warnerror
    sess.callbacks.consolewrite_warnerror = buffer.append
    try:
        yield buffer
    finally:
        try:
            sess.robjects.r("invisible(NULL)")
        finally:
            sess.callbacks.consolewrite_warnerror = previous


@contextlib.contextmanager
def _cached_importr(sess: types.SimpleNamespace, module: types.ModuleType) -> Iterator[None]:
    """Let pymer4 0.8.2 reuse loaded R packages inside the block.

    ``Lmer.fit`` calls ``importr("lme4")`` on every fit, which rebuilds Python wrappers for every
    lme4 function and takes longer than the glmer fit itself; within the block pymer4's module
    name ``importr`` returns the package handles loaded once. Restored on exit.
    """
    original = module.importr

    def importr(name: str, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs and name in sess.packages:
            return sess.packages[name]
        return original(name, *args, **kwargs)

    module.importr = importr
    try:
        yield
    finally:
        module.importr = original


# --------------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------------


def _check_formula(formula: Any) -> str:
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(
            f"formula must be an lme4 formula string such as {DEFAULT_FORMULA!r}; got {formula!r}"
        )
    if "|" not in formula:
        raise ValueError(
            f"formula must have at least one random effect such as (1 | patient_id); got {formula!r} "
            "(use a plain logistic regression for a model without random effects)"
        )
    return formula


def _prepare(data: Any, formula: str) -> pd.DataFrame:
    """Copy the columns ``formula`` uses for R: booleans to 0/1 integers; refuse a constant response.

    Only the formula's variables are passed on: converting every column to R costs more than a fit.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    if data.empty:
        raise ValueError("data has no rows")
    used = [c for c in data.columns if c in set(_formula_variables(formula))]
    df = data[used].reset_index(drop=True).copy()
    for name in df.columns:
        if pd.api.types.is_bool_dtype(df[name].dtype):
            if df[name].isna().any():
                raise ValueError(f"boolean column {name!r} has missing values; drop or fill them first")
            df[name] = df[name].astype("int64")
    response = formula.split("~", 1)[0].strip()
    if response in df.columns:
        values = df[response].dropna()
        if values.nunique() < 2:
            shown = values.iloc[0] if len(values) else "nothing"
            raise ConstantResponseError(
                f"response {response!r} is {shown!r} in every one of {len(values)} observations, so "
                "its log-odds cannot be estimated; leave this outcome out of the models"
            )
    return df


def _console_lines(buffer: Sequence[str], known: Sequence[str]) -> list[str]:
    """Turn R console text into messages, dropping R's framing and what lme4 already recorded.

    R prints a warning as ``In call :`` followed by its text, which may wrap over several lines
    (or as ``In call : text`` on one line); the wrapped lines are joined into one message.
    """
    messages: list[list[str]] = []
    inside = False  # the previous line belongs to a warning whose text may continue
    for raw in "".join(buffer).splitlines():
        line = raw.strip()
        if not line or re.fullmatch(r"(Warning messages?:|In addition:.*)", line):
            inside = False
            continue
        header = re.fullmatch(r"(?:\d+: )?In .*? :(?: (.*))?", line)
        if header:
            messages.append([header.group(1)] if header.group(1) else [])
            inside = True
        elif inside and messages:
            messages[-1].append(re.sub(r"^\d+: ", "", line))
        else:
            messages.append([re.sub(r"^\d+: ", "", line)])
    kept = []
    for parts in messages:
        text = " ".join(parts)
        if text and not any(text in message for message in known) and text not in kept:
            kept.append(text)
    return kept


def _r_column(sess: types.SimpleNamespace, name: str, column: pd.Series) -> Any:
    """Convert one prepared column to an R vector as R's ``read.csv`` would have typed it.

    Strings stay character vectors (glmer makes factors with R's level order), a pandas
    Categorical becomes a factor with its category order, missing values become NA.
    """
    ro, ri = sess.robjects, sess.rinterface
    missing = column.isna().to_numpy()
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy().astype(np.int32) + 1
        vector = ro.IntVector(codes)
        if missing.any():
            for i in np.flatnonzero(missing):
                vector[int(i)] = ri.NA_Integer
        vector.do_slot_assign("levels", ro.StrVector([str(c) for c in column.cat.categories]))
        vector.rclass = ro.StrVector(["factor"])
        return vector
    if pd.api.types.is_integer_dtype(column.dtype) and not missing.any():
        values = column.to_numpy()
        if values.size == 0 or np.abs(values).max() < 2**31 - 1:
            return ro.IntVector(values.astype(np.int32))
        return ro.FloatVector(values.astype(float))
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return ro.FloatVector(column.to_numpy(dtype=float, na_value=np.nan))
    values = column.to_numpy(dtype=object)
    bad = [i for i, v in enumerate(values) if not missing[i] and not isinstance(v, str)]
    if bad:
        row = bad[0]
        raise TypeError(
            f"column {name!r} mixes text with {type(values[row]).__name__} values (first at row "
            f"{column.index[row]!r}: {values[row]!r}); give it one type (text, numbers or booleans)"
        )
    return ro.StrVector([ri.NA_Character if m else v for v, m in zip(values, missing, strict=True)])


def _r_data_frame(sess: types.SimpleNamespace, df: pd.DataFrame) -> Any:
    columns = sess.robjects.vectors.ListVector(
        [(str(name), _r_column(sess, str(name), df[name])) for name in df.columns])
    return sess.data_frame(columns, len(df))


def _messages(console: Sequence[str], singular: bool, opt_code: int, lme4_messages: list[str],
              optimizer_warnings: list[str], other: Sequence[str] = ()) -> tuple[list[str], bool]:
    """Gather lme4's messages, the singular-fit note and console output; decide convergence."""
    messages = list(dict.fromkeys([*optimizer_warnings, *lme4_messages, *other]))
    if singular and _SINGULAR_MESSAGE not in messages:
        messages.append(_SINGULAR_MESSAGE)
    messages += [m for m in _console_lines(console, messages) if m not in messages]
    converged = opt_code == 0 and all(m == _SINGULAR_MESSAGE for m in lme4_messages)
    return messages, converged


def _fixed_frame(term: Sequence[str], estimate: np.ndarray, se: np.ndarray, z: np.ndarray,
                 p_value: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "term": [str(t) for t in term],
        "estimate": estimate,
        "se": se,
        "z": z,
        "p_value": p_value,
        "odds_ratio": np.exp(estimate),
        "or_ci_low": np.exp(estimate - _Z975 * se),
        "or_ci_high": np.exp(estimate + _Z975 * se),
    })[_FIXED_COLUMNS]


def _fit(formula: str, df: pd.DataFrame, family: str, engine: str) -> tuple[GlmerResult, Any]:
    """Fit with lme4 through `engine`; warn with lme4's messages; return the result and the R model."""
    result, model = (_fit_pymer4 if engine == "pymer4" else _fit_rpy2)(formula, df, family)
    if result.warnings:
        warnings.warn(f"glmer {formula!r}: " + "; ".join(result.warnings), GlmerFitWarning, stacklevel=3)
    return result, model


def _glmer_error(formula: str, exc: Exception, console: Sequence[str]) -> GlmerError:
    """lme4's error, with what R wrote to its console when that adds to it."""
    error = " ".join(str(exc).split())
    said = " ".join("".join(console).split())
    extra = f" (R console: {said})" if said and said not in error else ""
    return GlmerError(f"lme4 could not fit {formula!r}: {error}{extra}")


def _fit_rpy2(formula: str, df: pd.DataFrame, family: str) -> tuple[GlmerResult, Any]:
    """One R call: the formula's columns to R, glmer, and the extraction of its results."""
    sess = _session()
    data = _r_data_frame(sess, df)
    failure = None
    with _captured_r_console(sess) as console:
        try:
            out = sess.fit(formula, data)
        except sess.RRuntimeError as exc:
            failure = exc
    if failure is not None:
        raise _glmer_error(formula, failure, console) from failure

    get = lambda key: list(out.rx2(key))  # noqa: E731
    singular = bool(get("singular")[0])
    lme4_messages = [str(m) for m in get("lme4_messages")]
    messages, converged = _messages(console, singular, int(get("opt_code")[0]), lme4_messages,
                                    [str(m) for m in get("optimizer_warnings")])
    array = lambda key: np.asarray(out.rx2(key), dtype=float)  # noqa: E731
    fixed = _fixed_frame(get("term"), array("estimate"), array("se"), array("z"), array("p_value"))

    group, var1, var2 = (["" if v is sess.rinterface.NA_Character else str(v) for v in get(key)]
                         for key in ("vc_group", "vc_var1", "vc_var2"))
    vcov, sdcor = array("vc_vcov"), array("vc_sdcor")
    is_var = np.array([v == "" for v in var2], dtype=bool)  # a variance, not a correlation
    random = pd.DataFrame({
        "group": [g for g, k in zip(group, is_var, strict=True) if k],
        "name": [v for v, k in zip(var1, is_var, strict=True) if k],
        "variance": vcov[is_var],
        "sd": sdcor[is_var],
    })
    correlations = pd.DataFrame({
        "group": [g for g, k in zip(group, is_var, strict=True) if not k],
        "name1": [v for v, k in zip(var1, is_var, strict=True) if not k],
        "name2": [v for v, k in zip(var2, is_var, strict=True) if not k],
        "correlation": sdcor[~is_var],
    })
    result = GlmerResult(
        formula=formula,
        family=family,
        n_obs=int(get("nobs")[0]),
        n_groups=types.MappingProxyType(
            {str(k): int(v) for k, v in zip(get("group_names"), get("group_sizes"), strict=True)}),
        fixed_effects=fixed,
        random_effects=random,
        random_correlations=correlations,
        loglik=float(get("loglik")[0]),
        aic=float(get("aic")[0]),
        bic=float(get("bic")[0]),
        df=int(get("df")[0]),
        singular=singular,
        converged=converged,
        warnings=tuple(messages),
    )
    return result, out.rx2("model")


def _fit_pymer4(formula: str, df: pd.DataFrame, family: str) -> tuple[GlmerResult, Any]:
    """Fit through pymer4's ``Lmer`` and return the result and the R model object."""
    sess = _session()
    pymer4 = _pymer4()
    model = pymer4.Lmer(formula, data=df, family=family)
    # pymer4 0.8.2 would otherwise replace R's console writer with a discarding one for good.
    model._set_R_stdout = lambda verbose: None
    with contextlib.ExitStack() as stack:
        console = stack.enter_context(_captured_r_console(sess))
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        stack.enter_context(_cached_importr(sess, pymer4.module))
        warnings.simplefilter("always")
        try:
            model.fit(summarize=False, no_warnings=True, verbose=False)
            info = sess.info(model.model_obj)
        except sess.RRuntimeError as exc:
            stack.close()
            raise _glmer_error(formula, exc, console) from exc
    for w in caught:  # pymer4's own pandas deprecations are about pymer4, not the model
        if issubclass(w.category, (FutureWarning, DeprecationWarning)) and "pymer4" in str(w.filename):
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    get = lambda key: list(info.rx2(key))  # noqa: E731
    singular = bool(get("singular")[0])
    lme4_messages = [str(m) for m in get("lme4_messages")]
    pymer4_warnings = [str(w) for item in model.warnings for w in np.atleast_1d(item)]
    messages, converged = _messages(console, singular, int(get("opt_code")[0]), lme4_messages,
                                    [str(m) for m in get("optimizer_warnings")], pymer4_warnings)
    coefs = model.coefs
    fixed = _fixed_frame(list(coefs.index), coefs["Estimate"].to_numpy(float),
                         coefs["SE"].to_numpy(float), coefs["Z-stat"].to_numpy(float),
                         coefs["P-val"].to_numpy(float))
    rv = model.ranef_var
    random = pd.DataFrame({
        "group": [str(g) for g in rv.index],
        "name": rv["Name"].astype(str).to_list(),
        "variance": rv["Var"].to_numpy(float),
        "sd": rv["Std"].to_numpy(float),
    })
    if model.ranef_corr is not None:
        rc = model.ranef_corr
        correlations = pd.DataFrame({
            "group": [str(g) for g in rc.index],
            "name1": rc["IV1"].astype(str).to_list(),
            "name2": rc["IV2"].astype(str).to_list(),
            "correlation": rc["Corr"].to_numpy(float),
        })
    else:
        correlations = pd.DataFrame({"group": [], "name1": [], "name2": [], "correlation": []})

    result = GlmerResult(
        formula=formula,
        family=family,
        n_obs=int(get("nobs")[0]),
        n_groups=types.MappingProxyType({str(k): int(v) for k, v in model.grps.items()}),
        fixed_effects=fixed,
        random_effects=random,
        random_correlations=correlations,
        loglik=float(model.logLike),
        aic=float(model.AIC),
        bic=float(model.BIC),
        df=int(get("df")[0]),
        singular=singular,
        converged=converged,
        warnings=tuple(messages),
    )
    return result, model.model_obj


def glmer(formula: str, data: pd.DataFrame, *, family: str = "binomial", engine: str = "rpy2") -> GlmerResult:
    """Fit a generalized linear mixed model with lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula with at least one random effect, e.g.
        ``"present ~ regime + reader + (1 | patient_id)"``, crossed
        ``"... + (1 | patient_id) + (1 | gvr_id)"``, or a ``cbind(successes, failures)`` response.
    data : pandas.DataFrame
        The observations. Boolean columns are passed as 0/1 integers; string columns become R
        factors with levels in R's sort order; a pandas Categorical keeps its category order (the
        first category is the reference level).
    family : {"binomial"}
        Response family (logit link).
    engine : {"rpy2", "pymer4"}
        How lme4 is reached. ``"rpy2"`` (default) sends the formula's columns to R and runs
        ``glmer`` and the extraction of its results in one R call; ``"pymer4"`` goes through
        pymer4's ``Lmer.fit``, which also computes intervals, random effects, fitted values and
        residuals, and takes about 1.7 times as long (benchmarks/bench_glmer.py). Both give lme4's
        numbers for the same data.

    Returns
    -------
    GlmerResult
        Fixed effects with Wald z tests and odds ratios with 95 % Wald intervals, random-effect
        variances, log-likelihood, AIC, BIC, the singular and converged flags and lme4's messages.

    Raises
    ------
    ValueError
        If ``family`` is not allowed, or ``formula`` is not an lme4 formula with a random effect.
    ConstantResponseError
        If the response (a plain column name) takes one value only.
    GlmerError
        If lme4 stops with an error (e.g. a variable of the formula is not in ``data``).

    Warns
    -----
    GlmerFitWarning
        When lme4 reports a convergence problem or a singular fit (also kept in ``warnings``).

    Notes
    -----
    The model is logit P(y = 1 | b) = X beta + Z b with b ~ N(0, Sigma(theta)); glmer maximises the
    Laplace approximation of the marginal likelihood (``nAGQ = 1``) with its default
    ``glmerControl()``. Odds ratios are exp(beta) with Wald intervals exp(beta +- qnorm(0.975) se).

    References
    ----------
    Bates D, Maechler M, Bolker B, Walker S. Fitting linear mixed-effects models using lme4.
    J Stat Softw 2015;67(1):1-48. doi:10.18637/jss.v067.i01

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(40).astype(str), 6), "x": np.tile([0, 1], 120)})
    >>> eta = -0.5 + 1.2 * df["x"] + np.repeat(rng.normal(0, 1.5, 40), 6)
    >>> df["y"] = rng.random(240) < 1 / (1 + np.exp(-eta))
    >>> res = glmer("y ~ x + (1 | g)", df)
    >>> res.n_obs, list(res.fixed_effects["term"]), res.to_frame().shape
    (240, ['(Intercept)', 'x'], (1, 12))
    """
    check_option("family", family, _FAMILIES)
    check_option("engine", engine, ENGINES)
    formula = _check_formula(formula)
    return _fit(formula, _prepare(data, formula), family, engine)[0]


def _lrt(formula: str, df: pd.DataFrame, term: str, family: str, engine: str,
         full: tuple[GlmerResult, Any] | None = None) -> LikelihoodRatioResult:
    sess = _session()
    fixed_terms = [str(t) for t in sess.fixed_terms(formula)]
    if term not in fixed_terms:
        raise ValueError(f"term must be one of the formula's fixed terms {fixed_terms}; got {term!r}")
    reduced_formula = str(sess.drop_term(formula, term)[0])
    full_result = (full or _fit(formula, df, family, engine))[0]
    reduced_result = _fit(reduced_formula, df, family, engine)[0]
    if full_result.n_obs != reduced_result.n_obs:
        raise ValueError(
            f"the full and reduced models used {full_result.n_obs} and {reduced_result.n_obs} "
            f"observations; drop rows with missing values in {term!r} first"
        )
    chi2 = 2.0 * max(0.0, full_result.loglik - reduced_result.loglik)
    df_diff = full_result.df - reduced_result.df
    return LikelihoodRatioResult(
        term=term,
        formula=formula,
        reduced_formula=reduced_formula,
        n_obs=full_result.n_obs,
        chi2=chi2,
        df=df_diff,
        p_value=float(stats.chi2.sf(chi2, df_diff)),
        loglik_full=full_result.loglik,
        loglik_reduced=reduced_result.loglik,
        warnings=tuple([f"full: {w}" for w in full_result.warnings]
                       + [f"reduced: {w}" for w in reduced_result.warnings]),
        full=full_result,
        reduced=reduced_result,
    )


def likelihood_ratio_test(formula: str, data: pd.DataFrame, term: str, *,
                          family: str = "binomial", engine: str = "rpy2") -> LikelihoodRatioResult:
    """Test one fixed term by the likelihood ratio of the model with and without it.

    Parameters
    ----------
    formula : str
        The full model's lme4 formula (see :func:`glmer`).
    data : pandas.DataFrame
        The observations (as for :func:`glmer`).
    term : str
        A fixed term of ``formula`` as R labels it (e.g. ``"regime"``, ``"reader"``, ``"a:b"``).
    family : {"binomial"}
        Response family.
    engine : {"rpy2", "pymer4"}
        How lme4 is reached (see :func:`glmer`).

    Returns
    -------
    LikelihoodRatioResult
        chi2, df, p-value, both log-likelihoods and both fits.

    Raises
    ------
    ValueError
        If ``term`` is not a fixed term of ``formula``, or the two fits use different rows.
    ConstantResponseError, GlmerError
        As for :func:`glmer`.

    Notes
    -----
    Both models are fitted by maximum likelihood (Laplace). With l the log-likelihoods,
    chi2 = 2 max(0, l_full - l_reduced) on df = p_full - p_reduced parameters, p = P(X^2_df > chi2),
    exactly as lme4's ``anova(reduced, full)``. The reduced formula is R's
    ``update(formula, . ~ . - term)``.

    References
    ----------
    Bates D, Maechler M, Bolker B, Walker S. Fitting linear mixed-effects models using lme4.
    J Stat Softw 2015;67(1):1-48. doi:10.18637/jss.v067.i01

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(2)
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(40).astype(str), 6), "x": np.tile([0, 1], 120)})
    >>> eta = -0.5 + 1.5 * df["x"] + np.repeat(rng.normal(0, 1.5, 40), 6)
    >>> df["y"] = rng.random(240) < 1 / (1 + np.exp(-eta))
    >>> lrt = likelihood_ratio_test("y ~ x + (1 | g)", df, "x")
    >>> lrt.reduced_formula, lrt.df, bool(lrt.p_value < 0.001)
    ('y ~ (1 | g)', 1, True)
    """
    check_option("family", family, _FAMILIES)
    check_option("engine", engine, ENGINES)
    formula = _check_formula(formula)
    if not isinstance(term, str):
        raise TypeError(f"term must be a string naming a fixed term; got {type(term).__name__}")
    return _lrt(formula, _prepare(data, formula), term, family, engine)


# --------------------------------------------------------------------------------------------------
# Table 2
# --------------------------------------------------------------------------------------------------


def _check_assessments(assessments: Any) -> pd.DataFrame:
    if not isinstance(assessments, pd.DataFrame):
        raise TypeError(f"assessments must be a pandas DataFrame; got {type(assessments).__name__}")
    missing = [c for c in ASSESSMENT_COLUMNS if c not in assessments.columns]
    if missing:
        raise ValueError(f"assessments lacks column(s) {missing}; it needs {list(ASSESSMENT_COLUMNS)}")
    if assessments.empty:
        raise ValueError("assessments has no rows")
    regimes = set(assessments["regime"].astype(str).unique())
    if not regimes <= set(REGIME_LEVELS):
        other = sorted(regimes - set(REGIME_LEVELS))
        raise ValueError(f"regime must be one of {list(REGIME_LEVELS)}; got {other}")
    present = assessments["present"]
    if not (pd.api.types.is_bool_dtype(present.dtype) or set(pd.unique(present)) <= {0, 1}):
        shown = sorted(map(str, pd.unique(present)))[:5]
        raise ValueError(f"present must be boolean (or 0/1); got values {shown}")
    df = assessments.reset_index(drop=True).copy()
    df["regime"] = pd.Categorical(df["regime"].astype(str), categories=list(REGIME_LEVELS))
    return df


def _check_features_vary(df: pd.DataFrame) -> None:
    for feature, present in df.groupby("feature", sort=False)["present"]:
        if present.nunique() < 2:
            raise ConstantResponseError(
                f"feature {feature!r}: present is {present.iloc[0]!r} in every one of {len(present)} "
                "assessments, so its log-odds cannot be estimated; leave this feature out of the models"
            )


def _feature_row(feature: str, sub: pd.DataFrame, formula: str, term: str,
                 engine: str) -> dict[str, Any]:
    sess = _session()
    try:
        df = _prepare(sub, formula)
    except ConstantResponseError as exc:
        raise ConstantResponseError(f"feature {feature!r}: {exc}") from exc
    if term in df.columns and df[term].nunique() < 2:
        raise FeatureTermError(
            f"feature {feature!r}: term {term!r} takes the single value {df[term].iloc[0]!r} in its "
            f"{len(df)} rows, so its effect cannot be estimated; leave this feature out or add the "
            "other level"
        )
    with warnings.catch_warnings():
        # Each fit would warn with lme4's raw text; the feature gets one line with its meaning below.
        warnings.simplefilter("ignore", GlmerFitWarning)
        full, model_obj = _fit(formula, df, "binomial", engine)
        coefficients = [str(c) for c in sess.term_coefficients(model_obj, term)]
        if len(coefficients) != 1:
            raise FeatureTermError(
                f"feature {feature!r}: term {term!r} has coefficients {coefficients} in the fitted model; "
                "feature_tests needs a term with exactly one (a two-level factor or a numeric variable)"
            )
        lrt = _lrt(formula, df, term, "binomial", engine, full=(full, model_obj))
    coef = full.coefficient(coefficients[0])
    caution = p_value_caution(full.warnings, lrt.reduced.warnings, p_value=float(coef["p_value"]),
                              lrt_p_value=lrt.p_value)
    if caution:
        said = " | ".join(" ".join(m.split()) for m in lrt.warnings)
        warnings.warn(f"feature {feature!r}: lme4 said: {said}. Meaning: {caution}", GlmerFitWarning,
                      stacklevel=3)
    return {
        "feature": feature,
        "term": term,
        "coefficient": coefficients[0],
        "n_obs": full.n_obs,
        "n_present": int(sub["present"].astype(int).sum()),
        **{k: float(coef[k]) for k in _FIXED_COLUMNS[1:]},
        "lrt_chi2": lrt.chi2,
        "lrt_df": lrt.df,
        "lrt_p_value": lrt.p_value,
        "singular": full.singular,
        "converged": full.converged,
        "warnings": "; ".join(lrt.warnings),
        "caution": caution,
    }


def feature_tests(assessments: pd.DataFrame, *, formula: str = DEFAULT_FORMULA,
                  term: str = "regime", engine: str = "rpy2") -> pd.DataFrame:
    """Test, feature by feature, whether highlighting depends on the model that made the GVR.

    Parameters
    ----------
    assessments : pandas.DataFrame
        A reader-assessments table (``data_schema``'s reader_assessments): columns ``reader``,
        ``round``, ``gvr_id``, ``regime`` ("correct" or "overfitted"), ``patient_id``, ``feature``,
        ``present`` (bool) and ``simulated`` (bool); other columns are passed on to the formula.
    formula : str
        The lme4 formula fitted to each feature's rows; by default the paper's
        ``present ~ regime + reader + (1 | patient_id)``.
    term : str
        The fixed term to report and test; it must have exactly one coefficient.
    engine : {"rpy2", "pymer4"}
        How lme4 is reached (see :func:`glmer`).

    Returns
    -------
    pandas.DataFrame
        One row per feature, in order of first appearance: ``feature``, ``term``, ``coefficient``
        (e.g. ``regimecorrect``), ``n_obs``, ``n_present``, ``estimate`` (log odds ratio), ``se``,
        ``z``, ``p_value`` (Wald), ``odds_ratio``, ``or_ci_low``, ``or_ci_high`` (95 % Wald),
        ``lrt_chi2``, ``lrt_df``, ``lrt_p_value`` (likelihood-ratio test of ``term``),
        ``singular``, ``converged`` (of the full model) and ``warnings`` (both fits' lme4
        messages, prefixed ``full:``/``reduced:``, joined by "; "; empty when clean).

    Raises
    ------
    ValueError
        If a column is missing, ``regime`` has another value, or ``present`` is not boolean.
    ConstantResponseError
        If a feature was marked present in every assessment or in none (the message names it).
    FeatureTermError
        If ``term`` does not give exactly one coefficient for a feature (e.g. one regime only).
    GlmerError
        If lme4 stops with an error.

    Notes
    -----
    ``regime`` is a factor with reference level ``"overfitted"``, so ``estimate`` is the log odds
    ratio of a feature being highlighted on a GVR of the correctly trained model versus the
    overfitted one, with readers as fixed effects and a random intercept per patient:
    logit P(present) = b0 + b1 [correct] + b2 [reader B] + u_patient, u ~ N(0, s^2).
    The Wald p-value tests b1 = 0 from the curvature at the estimate; the likelihood-ratio
    p-value compares the fit with ``update(formula, . ~ . - regime)`` (see
    :func:`likelihood_ratio_test`).

    References
    ----------
    Bates D, Maechler M, Bolker B, Walker S. Fitting linear mixed-effects models using lme4.
    J Stat Softw 2015;67(1):1-48. doi:10.18637/jss.v067.i01

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> n = 240
    >>> df = pd.DataFrame({"reader": np.tile(["A", "B"], n // 2), "round": 1,
    ...     "gvr_id": [f"g{i}" for i in range(n)], "regime": np.repeat(["correct", "overfitted"], n // 2),
    ...     "patient_id": [f"p{i % 40}" for i in range(n)], "feature": "cardiomegaly", "simulated": True})
    >>> u = rng.normal(0, 1.5, 40)[np.arange(n) % 40]
    >>> eta = np.where(df["regime"] == "correct", 1.0, -1.0) + u
    >>> df["present"] = rng.random(n) < 1 / (1 + np.exp(-eta))
    >>> table = feature_tests(df)
    >>> list(table["coefficient"]), bool(table.loc[0, "odds_ratio"] > 1), table.loc[0, "warnings"]
    (['regimecorrect'], True, '')
    """
    df = _check_assessments(assessments)
    _check_formula(formula)
    check_option("engine", engine, ENGINES)
    if not isinstance(term, str):
        raise TypeError(f"term must be a string naming a fixed term; got {type(term).__name__}")
    _check_features_vary(df)
    rows = [
        _feature_row(str(feature), df[df["feature"] == feature], formula, term, engine)
        for feature in pd.unique(df["feature"])
    ]
    return pd.DataFrame(rows, columns=_RESULT_COLUMNS)


# --------------------------------------------------------------------------------------------------
# The R script
# --------------------------------------------------------------------------------------------------

_R_SCRIPT = r"""# Table 2's mixed-effects models, refitted in R without Python.
#
# Written by analysis.mixed_models.write_r_script (gvr-chf). Needs R >= 4.0 and lme4 only.
# Run:  Rscript table2_models.R
# Reads table2_models.csv beside this script (one row per reader, round, GVR and feature; booleans
# as 0/1) and writes table2_models_results.csv beside it: per feature, the regime effect (log odds
# ratio, SE, Wald z and p, odds ratio with 95 % Wald interval exp(est +- qnorm(0.975) * se)), the
# likelihood-ratio test as anova(reduced, full), and lme4's messages.
# regime is a factor with reference level "overfitted": the coefficient is regimecorrect.

suppressPackageStartupMessages(library(lme4))

model_formula <- @FORMULA@
term <- @TERM@
regime_levels <- c(@LEVELS@)

here <- local({
  args <- commandArgs(trailingOnly = FALSE)
  file <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(file) == 1) dirname(normalizePath(file)) else getwd()
})
d <- read.csv(file.path(here, "table2_models.csv"), stringsAsFactors = FALSE)
d$regime <- factor(d$regime, levels = regime_levels)

# glmer (Laplace, ML), keeping its warnings and messages and lme4's convergence notes
glmer_noting <- function(formula, data) {
  notes <- character()
  fit <- withCallingHandlers(
    glmer(formula, data = data, family = binomial),
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { notes <<- c(notes, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }
  )
  notes <- c(notes, as.character(unlist(fit@optinfo$warnings)), fit@optinfo$conv$lme4$messages)
  if (isSingular(fit)) notes <- c(notes, "boundary (singular) fit: see help('isSingular')")
  list(fit = fit, notes = unique(notes))
}

full_formula <- as.formula(model_formula)
reduced_formula <- update(full_formula, as.formula(paste(". ~ . -", term)))
rows <- list()
for (feature in unique(d$feature)) {
  sub <- d[d$feature == feature, ]
  full <- glmer_noting(full_formula, sub)
  reduced <- glmer_noting(reduced_formula, sub)
  mm <- model.matrix(full$fit)
  labels <- attr(terms(full$fit, fixed.only = TRUE), "term.labels")
  coefficient <- colnames(mm)[attr(mm, "assign") == match(term, labels)]
  if (length(coefficient) != 1) {
    stop("term ", term, " has ", length(coefficient), " coefficients for ", feature)
  }
  co <- summary(full$fit)$coefficients
  est <- co[coefficient, 1]
  se <- co[coefficient, 2]
  lrt <- anova(reduced$fit, full$fit)
  rows[[length(rows) + 1]] <- data.frame(
    feature = feature, term = term, coefficient = coefficient,
    n_obs = nobs(full$fit), n_present = sum(sub$present),
    estimate = est, se = se, z = co[coefficient, 3], p_value = co[coefficient, 4],
    odds_ratio = exp(est), or_ci_low = exp(est - qnorm(0.975) * se),
    or_ci_high = exp(est + qnorm(0.975) * se),
    lrt_chi2 = lrt$Chisq[2], lrt_df = lrt$Df[2], lrt_p_value = lrt$`Pr(>Chisq)`[2],
    singular = isSingular(full$fit),
    warnings = paste(c(if (length(full$notes)) paste("full:", full$notes),
                       if (length(reduced$notes)) paste("reduced:", reduced$notes)), collapse = "; "),
    r_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
    stringsAsFactors = FALSE
  )
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "table2_models_results.csv"), row.names = FALSE)
print(out[, c("feature", "coefficient", "estimate", "se", "p_value", "lrt_p_value")], digits = 6)
"""


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
    table.to_csv(files.data, index=False)
    script = (_R_SCRIPT.replace("@FORMULA@", _r_string(formula))
              .replace("@TERM@", _r_string(term))
              .replace("@LEVELS@", ", ".join(_r_string(level) for level in REGIME_LEVELS)))
    files.script.write_text(script)
    return files

