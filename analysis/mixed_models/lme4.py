"""The bridge to lme4: the embedded R session (rpy2) or pymer4, data sent to R as typed vectors, and
:func:`glmer` and :func:`likelihood_ratio_test` on top of it."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._checks import check_option
from analysis.mixed_models.results import (
    _FAMILIES,
    _FIXED_COLUMNS,
    _SINGULAR_MESSAGE,
    _Z975,
    DEFAULT_FORMULA,
    ENGINES,
    ConstantResponseError,
    GlmerError,
    GlmerFitWarning,
    GlmerResult,
    LikelihoodRatioResult,
)

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
  fit = function(formula, data, optimizer = NULL) {
    control <- if (is.null(optimizer)) lme4::glmerControl() else lme4::glmerControl(optimizer = optimizer)
    m <- lme4::glmer(stats::as.formula(formula), data = data, family = stats::binomial, control = control)
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


#: R's variables as they were before this process started R (rpy2 prepends R's own library folders to
#: LD_LIBRARY_PATH); None until R starts here. A child process that is not R (a report kernel) gets these.
ENV_BEFORE_R: dict[str, str | None] | None = None
R_VARIABLES = ("LD_LIBRARY_PATH", "R_HOME")


@functools.cache
def _session() -> types.SimpleNamespace:
    """Start R through rpy2 once per process, load lme4 and return handles to what the fits use."""
    global ENV_BEFORE_R
    if ENV_BEFORE_R is None and "rpy2.rinterface" not in sys.modules:
        ENV_BEFORE_R = {name: os.environ.get(name) for name in R_VARIABLES}
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
    estimate, se = np.asarray(estimate, float), np.asarray(se, float)
    with np.errstate(over="ignore"):  # a separated feature's log odds run away: its odds ratio is inf, as R's exp()
        odds = np.exp(estimate), np.exp(estimate - _Z975 * se), np.exp(estimate + _Z975 * se)
    return pd.DataFrame({
        "term": [str(t) for t in term],
        "estimate": estimate,
        "se": se,
        "z": z,
        "p_value": p_value,
        "odds_ratio": odds[0],
        "or_ci_low": odds[1],
        "or_ci_high": odds[2],
    })[_FIXED_COLUMNS]


def _fit(formula: str, df: pd.DataFrame, family: str, engine: str,
         optimizer: str | None = None) -> tuple[GlmerResult, Any]:
    """Fit with lme4 through `engine` (with `optimizer` for both of glmer's phases, or lme4's default, bobyqa
    then Nelder-Mead); warn with lme4's messages; return the result and the R model."""
    result, model = (_fit_pymer4 if engine == "pymer4" else _fit_rpy2)(formula, df, family, optimizer)
    if result.warnings:
        warnings.warn(f"glmer {formula!r}: " + "; ".join(result.warnings), GlmerFitWarning, stacklevel=3)
    return result, model


def _glmer_error(formula: str, exc: Exception, console: Sequence[str]) -> GlmerError:
    """lme4's error, with what R wrote to its console when that adds to it."""
    error = " ".join(str(exc).split())
    said = " ".join("".join(console).split())
    extra = f" (R console: {said})" if said and said not in error else ""
    return GlmerError(f"lme4 could not fit {formula!r}: {error}{extra}")


def _fit_rpy2(formula: str, df: pd.DataFrame, family: str, optimizer: str | None = None) -> tuple[GlmerResult, Any]:
    """One R call: the formula's columns to R, glmer, and the extraction of its results."""
    sess = _session()
    data = _r_data_frame(sess, df)
    failure = None
    with _captured_r_console(sess) as console:
        try:
            out = sess.fit(formula, data, sess.rinterface.NULL if optimizer is None else optimizer)
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


def _fit_pymer4(formula: str, df: pd.DataFrame, family: str, optimizer: str | None = None) -> tuple[GlmerResult, Any]:
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
            model.fit(summarize=False, no_warnings=True, verbose=False,
                      control="" if optimizer is None else f"optimizer='{optimizer}'")
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
         full: tuple[GlmerResult, Any] | None = None,
         reduced: Callable[[str], GlmerResult] | None = None) -> LikelihoodRatioResult:
    sess = _session()
    fixed_terms = [str(t) for t in sess.fixed_terms(formula)]
    if term not in fixed_terms:
        raise ValueError(f"term must be one of the formula's fixed terms {fixed_terms}; got {term!r}")
    reduced_formula = str(sess.drop_term(formula, term)[0])
    full_result = (full or _fit(formula, df, family, engine))[0]
    reduced_result = reduced(reduced_formula) if reduced is not None else _fit(reduced_formula, df, family, engine)[0]
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
