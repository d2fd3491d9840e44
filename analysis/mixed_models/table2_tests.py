"""Table 2's tests: one mixed model per feature of a reader-assessments table, with what lme4's
messages mean for each feature's P values."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis._checks import check_assessments, check_option
from analysis.mixed_models.lme4 import _check_formula, _fit, _lrt, _prepare, _session
from analysis.mixed_models.results import (
    _FIXED_COLUMNS,
    _RESULT_COLUMNS,
    ASSESSMENT_COLUMNS,
    DEFAULT_FORMULA,
    ENGINES,
    REGIME_LEVELS,
    ConstantResponseError,
    FeatureTermError,
    GlmerError,
    GlmerFitWarning,
)

# --------------------------------------------------------------------------------------------------
# Table 2
# --------------------------------------------------------------------------------------------------


def _check_assessments(assessments: Any) -> pd.DataFrame:
    check_assessments(assessments, needs=ASSESSMENT_COLUMNS, integer_present=True)
    df = assessments.reset_index(drop=True).copy()
    df["regime"] = pd.Categorical(df["regime"].astype(str), categories=list(REGIME_LEVELS))
    return df


def constant_features(df: pd.DataFrame) -> list[str]:
    """Features whose ``present`` takes one value in every assessment: no log-odds to estimate."""
    return [feature for feature, present in df.groupby("feature", sort=False)["present"] if present.nunique() < 2]


def _check_features_vary(df: pd.DataFrame) -> None:
    constant = constant_features(df)
    if constant:
        present = df.loc[df["feature"] == constant[0], "present"]
        raise ConstantResponseError(
            f"feature {constant[0]!r}: present is {bool(present.iloc[0])} in every one of {len(present)} "
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
    refits: list[tuple[str, str, tuple[str, ...]]] = []  # (model, optimizer, the default optimizer's messages)

    def settled(which: str, model_formula: str):
        fitted, optimizer, first = _settled_fit(model_formula, df, engine)
        if optimizer:
            refits.append((which, optimizer, first))
        return fitted

    with warnings.catch_warnings():
        # Each fit would warn with lme4's raw text; the feature gets one line with its meaning below.
        warnings.simplefilter("ignore", GlmerFitWarning)
        full, model_obj = settled("full", formula)
        coefficients = [str(c) for c in sess.term_coefficients(model_obj, term)]
        if len(coefficients) != 1:
            raise FeatureTermError(
                f"feature {feature!r}: term {term!r} has coefficients {coefficients} in the fitted model; "
                "feature_tests needs a term with exactly one (a two-level factor or a numeric variable)"
            )
        lrt = _lrt(formula, df, term, "binomial", engine, full=(full, model_obj),
                   reduced=lambda reduced_formula: settled("reduced", reduced_formula)[0])
    coef = full.coefficient(coefficients[0])
    separated = separation(df, term)
    caution = p_value_caution(full.warnings, lrt.reduced.warnings, p_value=float(coef["p_value"]),
                              lrt_p_value=lrt.p_value, separated=separated)
    heed = bool(caution)  # a refit that settled what the default did not leaves nothing to heed
    if refits:
        said = "; ".join(f"lme4's default optimizer did not settle the {which} model; refitted with {optimizer}, "
                         "which converged at the same or a higher likelihood" for which, optimizer, _ in refits)
        fitted = {which for which, _, _ in refits}
        caution = (f"{said}: " + ("the P values are from the refit" if "full" in fitted
                                  else "the likelihood-ratio P is from the refit (the Wald P is the full model's)")
                   + (f"; {caution}" if caution else ""))
    elif OTHER_OPTIMIZERS and _kinds(full.warnings) & {"not_converged", "curvature"}:  # every one was tried
        caution += f" ({' and '.join(OTHER_OPTIMIZERS)}, tried after lme4's default, did not settle it either)"
    messages = [*lrt.warnings, *(f"{which}, lme4's default optimizer: {m}" for which, _, first in refits
                                 for m in dict.fromkeys(first))]
    if heed:
        said = " | ".join(" ".join(m.split()) for m in messages) or "nothing"
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
        "warnings": "; ".join(messages),
        "caution": caution,
        "separation": separated or "",
        "optimizer": "; ".join(f"{optimizer} ({which} model)" for which, optimizer, _ in refits),
    }


def feature_tests(assessments: pd.DataFrame, *, formula: str = DEFAULT_FORMULA,
                  term: str = "regime", engine: str = "rpy2") -> pd.DataFrame:
    """Test, feature by feature, whether highlighting depends on the model that made the GVR.

    Parameters
    ----------
    assessments : pandas.DataFrame
        A reader-assessments table (``data_schema``'s reader_assessments): columns ``reader``,
        ``round``, ``gvr_id``, ``regime`` ("correct" or "overfitted"), ``patient_id``, ``feature``,
        ``present`` (bool); other columns (such as ``simulated``) are passed on to the formula.
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
        messages, prefixed ``full:``/``reduced:``, joined by "; "; empty when clean), ``caution`` (what
        those messages mean for each P value) and ``separation`` (where ``term`` separates the feature
        completely, :func:`separation`; empty when it does not) and ``optimizer`` (where lme4's default did not
        converge and another did, :func:`_settled_fit`: e.g. "bobyqa (full model)"; empty otherwise).
        :func:`reported_p` picks the P value to print from a row.

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



_NOT_CONVERGED = ("failed to converge", "convergence code", "did not converge", "iteration limit")
_SINGULAR = ("boundary (singular)",)
_CURVATURE = ("nearly unidentifiable", "Hessian", "not positive definite", "eigenvalue")


def _kinds(messages: Sequence[str]) -> set[str]:
    kinds = set()
    for m in messages:
        if any(k in m for k in _NOT_CONVERGED):
            kinds.add("not_converged")
        elif any(k in m for k in _CURVATURE):  # before singular: "Hessian is numerically singular" is curvature
            kinds.add("curvature")
        elif any(k in m for k in _SINGULAR):
            kinds.add("singular")
        else:
            kinds.add("other")
    return kinds


#: Optimizers tried, in order, when lme4's default (bobyqa, then Nelder-Mead) does not converge or leaves the
#: curvature at the estimate poorly determined: lme4's advice (``?convergence``, ``allFit``) is to refit with
#: others and compare. On the default study's opacity readings the default stopped with an SE of 0.0008 on a
#: log odds ratio (Wald P 0) where bobyqa alone converged cleanly with SE 0.76 (P .016) at a log-likelihood
#: 0.007 lower: the same optimum for any test, and the one whose curvature means something.
OTHER_OPTIMIZERS = ("bobyqa", "nloptwrap")
#: How much lower a clean refit's log-likelihood may be than the flagged fit's and still be kept: 0.01, the
#: distance between optimizers' stopping points on a flat surface (0.007 on the opacity readings). A reduced
#: model's refit that much lower raises a likelihood-ratio chi-square by at most 0.02. A higher one is kept: it
#: is a better optimum, which the flagged fit did not reach.
SAME_OPTIMUM_LOGLIK = 0.01


def _settled_fit(formula: str, df: pd.DataFrame, engine: str) -> tuple[tuple[Any, Any], str, tuple[str, ...]]:
    """lme4's default fit, or where it did not converge or left the curvature poorly determined, the first of
    :data:`OTHER_OPTIMIZERS` that converges without such a message at the same or a higher likelihood
    (:data:`SAME_OPTIMUM_LOGLIK`); with the optimizer used ("" for the default) and the default fit's messages."""
    first = _fit(formula, df, "binomial", engine)
    if not (_kinds(first[0].warnings) & {"not_converged", "curvature"}):
        return first, "", ()
    for optimizer in OTHER_OPTIMIZERS:
        try:
            other = _fit(formula, df, "binomial", engine, optimizer=optimizer)
        except GlmerError:
            continue
        clean = not (_kinds(other[0].warnings) & {"not_converged", "curvature", "other"})
        if clean and other[0].loglik >= first[0].loglik - SAME_OPTIMUM_LOGLIK:
            return other, optimizer, tuple(" ".join(m.split()) for m in first[0].warnings)
    return first, "", ()


def separation(df: pd.DataFrame, term: str) -> str | None:
    """Where a categorical `term` separates ``present`` completely: a level in whose rows the feature was
    marked present in every one, or in none (a phrase), or None.

    >>> df = pd.DataFrame({"regime": ["correct"] * 3 + ["overfitted"] * 3, "present": [1, 1, 1, 0, 1, 0]})
    >>> separation(df, "regime")
    "present in every one of the 3 rows with regime 'correct'"
    >>> separation(df.assign(present=[1, 0, 1, 0, 1, 0]), "regime") is None
    True
    """
    if term not in df.columns or pd.api.types.is_numeric_dtype(df[term]):
        return None
    for level, present in df.groupby(term, observed=True, sort=False)["present"]:
        if len(present) and present.nunique() == 1:
            return (f"{'present' if bool(present.iloc[0]) else 'absent'} in every one of the {len(present)} rows "
                    f"with {term} {str(level)!r}")
    return None


def reported_p(row: Any) -> tuple[float, str]:
    """The P value to print for a row of :func:`feature_tests`, and its test's name.

    The Wald P, except where the term separates the feature completely: there the estimate runs off towards
    infinity and the Wald P (from the curvature at the optimiser's stopping point) says nothing (Hauck and
    Donner, J Am Stat Assoc 1977;72:851-853), so the likelihood-ratio P is printed. A row without the
    ``separation`` column (an analysis written before it was kept) gives the Wald P.

    >>> reported_p({"p_value": 0.9975, "lrt_p_value": 5.4e-23, "separation": "present in every one of the 80 rows"})
    (5.4e-23, 'likelihood-ratio')
    >>> reported_p({"p_value": 0.03, "lrt_p_value": 0.02, "separation": ""})
    (0.03, 'Wald')
    """
    get = row.get if hasattr(row, "get") else (lambda key, default=None: getattr(row, key, default))
    separated = get("separation", "")
    lrt = get("lrt_p_value", float("nan"))
    if isinstance(separated, str) and separated and lrt is not None and pd.notna(lrt):
        return float(lrt), "likelihood-ratio"
    wald = get("p_value", float("nan"))
    return float("nan") if wald is None or pd.isna(wald) else float(wald), "Wald"


def p_value_caution(full_warnings: Sequence[str], reduced_warnings: Sequence[str] = (), *,
                    p_value: float, lrt_p_value: float | None = None, separated: str | None = None) -> str:
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
    separated : str, optional
        Where the term separates the response completely (:func:`separation`), which lme4 need not warn of.

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
    if separated:  # lme4 may fit without a word; the estimate runs off to the optimiser's limit
        parts.append(f"the feature was {separated} (complete separation): the estimate and odds ratio run off "
                     f"towards infinity, where the curvature the Wald SE comes from means nothing (lme4 may give a huge SE "
                     f"or a tiny one), so {wald} is not evidence either way; rely on {lrt}")
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
