"""What lme4's fits give back: the result classes, their errors and warnings, and the conventions
(regime levels, the paper's formula, the columns of a reader-assessments table and of Table 2's tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from analysis.errors import UndefinedStatisticError

#: Levels of ``regime``, reference level first (the regime coefficient is ``regimecorrect``).
REGIME_LEVELS: tuple[str, str] = ("overfitted", "correct")
#: The paper's model: regime and reader as fixed effects, a random intercept per patient.
DEFAULT_FORMULA = "present ~ regime + reader + (1 | patient_id)"
#: The same model for a single reader, who has no reader effect to estimate.
ONE_READER_FORMULA = "present ~ regime + (1 | patient_id)"


def formula_for(assessments) -> str:
    """:data:`DEFAULT_FORMULA`, or :data:`ONE_READER_FORMULA` when one reader gave every assessment."""
    return ONE_READER_FORMULA if assessments["reader"].nunique() == 1 else DEFAULT_FORMULA
#: Columns :func:`feature_tests` needs (those of ``data_schema``'s reader_assessments table).
ASSESSMENT_COLUMNS = ("reader", "round", "gvr_id", "regime", "patient_id", "feature", "present")
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
    "converged", "warnings", "caution", "separation", "optimizer",
]


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
