# Table 2's mixed-effects models, refitted in R without Python.
#
# Written by analysis.mixed_models.write_r_script (gvr-chf). Needs R >= 4.0 and lme4 only.
# Run:  Rscript table2_models.R
# Reads table2_models.csv beside this script (one row per reader, round, GVR and feature; booleans
# as 0/1) and writes table2_models_results.csv beside it: per feature, the regime effect (log odds
# ratio, SE, Wald z and p, odds ratio with 95 % Wald interval exp(est +- qnorm(0.975) * se)), the
# likelihood-ratio test as anova(reduced, full), lme4's messages, and the optimizer used where lme4's
# default did not settle a fit (below).
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
# text columns stay text (reader "1" is a level, not a number; "007" and "7" are two patients)
d <- read.csv(file.path(here, "table2_models.csv"), stringsAsFactors = FALSE,
              colClasses = c(@TEXT_COLUMNS@))
d$regime <- factor(d$regime, levels = regime_levels)

# glmer (Laplace, ML), keeping its warnings and messages and lme4's convergence notes
glmer_noting <- function(formula, data, control = glmerControl()) {
  notes <- character()
  fit <- withCallingHandlers(
    glmer(formula, data = data, family = binomial, control = control),
    warning = function(w) { notes <<- c(notes, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { notes <<- c(notes, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }
  )
  notes <- c(notes, as.character(unlist(fit@optinfo$warnings)), fit@optinfo$conv$lme4$messages)
  if (isSingular(fit)) notes <- c(notes, "boundary (singular) fit: see help('isSingular')")
  list(fit = fit, notes = unique(notes))
}

# Where lme4's default optimizer (bobyqa, then Nelder-Mead) does not converge or leaves the curvature poorly
# determined, lme4's advice (?convergence, allFit) is to refit with others: the first of these that converges
# with no message but a singular fit's, at a log-likelihood at most 0.01 below the default's (or above it), is used.
other_optimizers <- c("bobyqa", "nloptwrap")
unsettled <- function(notes) {
  any(grepl("failed to converge|convergence code|did not converge|iteration limit|nearly unidentifiable|Hessian|not positive definite|eigenvalue",
            notes))
}
glmer_settled <- function(formula, data) {
  first <- glmer_noting(formula, data)
  if (!unsettled(first$notes)) return(c(first, list(optimizer = "", first_notes = character())))
  for (optimizer in other_optimizers) {
    other <- tryCatch(glmer_noting(formula, data, glmerControl(optimizer = optimizer)), error = function(e) NULL)
    if (is.null(other)) next
    clean <- all(grepl("boundary \\(singular\\)", other$notes)) && !unsettled(other$notes)
    if (clean && as.numeric(logLik(other$fit)) >= as.numeric(logLik(first$fit)) - 0.01) {
      return(c(other, list(optimizer = optimizer, first_notes = unique(gsub("\\s+", " ", trimws(first$notes))))))
    }
  }
  c(first, list(optimizer = "", first_notes = character()))
}

full_formula <- as.formula(model_formula)
reduced_formula <- update(full_formula, as.formula(paste(". ~ . -", term)))
rows <- list()
for (feature in unique(d$feature)) {
  sub <- d[d$feature == feature, ]
  full <- glmer_settled(full_formula, sub)
  reduced <- glmer_settled(reduced_formula, sub)
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
                       if (length(reduced$notes)) paste("reduced:", reduced$notes),
                       if (length(full$first_notes)) paste("full, lme4's default optimizer:", full$first_notes),
                       if (length(reduced$first_notes)) paste("reduced, lme4's default optimizer:", reduced$first_notes)),
                     collapse = "; "),
    optimizer = paste(c(if (nzchar(full$optimizer)) paste0(full$optimizer, " (full model)"),
                        if (nzchar(reduced$optimizer)) paste0(reduced$optimizer, " (reduced model)")), collapse = "; "),
    r_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
    stringsAsFactors = FALSE
  )
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "table2_models_results.csv"), row.names = FALSE)
print(out[, c("feature", "coefficient", "estimate", "se", "p_value", "lrt_p_value")], digits = 6)
