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

The package holds one concept a module: :mod:`~analysis.mixed_models.results` (the result classes and
conventions), :mod:`~analysis.mixed_models.lme4` (the bridge to lme4 and the fits),
:mod:`~analysis.mixed_models.table2_tests` (Table 2's loop) and :mod:`~analysis.mixed_models.r_script`
(the plain R script, whose text is ``table2_models.R``).

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

from analysis.mixed_models.table2_tests import feature_tests, p_value_caution, reported_p, separation
from analysis.mixed_models.lme4 import glmer, likelihood_ratio_test
from analysis.mixed_models.r_script import RScriptFiles, write_r_script
from analysis.mixed_models.results import (
    ASSESSMENT_COLUMNS,
    DEFAULT_FORMULA,
    ONE_READER_FORMULA,
    formula_for,
    ENGINES,
    REGIME_LEVELS,
    ConstantResponseError,
    FeatureTermError,
    GlmerError,
    GlmerFitWarning,
    GlmerResult,
    LikelihoodRatioResult,
)

__all__ = [
    "ASSESSMENT_COLUMNS",
    "DEFAULT_FORMULA",
    "ONE_READER_FORMULA",
    "formula_for",
    "ENGINES",
    "REGIME_LEVELS",
    "ConstantResponseError",
    "FeatureTermError",
    "GlmerError",
    "GlmerFitWarning",
    "GlmerResult",
    "LikelihoodRatioResult",
    "RScriptFiles",
    "feature_tests",
    "glmer",
    "likelihood_ratio_test",
    "p_value_caution",
    "reported_p",
    "separation",
    "write_r_script",
]
