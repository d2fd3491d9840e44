# Reference values for tests/analysis/test_mixed_models.py, fitted with lme4 directly.
#
# Run from anywhere:  Rscript tests/analysis/r_mixed/reference.R [output.json]
# Reads the seeded CSVs written by make_data.R (beside this script) and writes expected.json
# (or the path given): for each case the formula, fixed effects (estimate, SE, z, Wald p),
# random-effect variances and SDs, log-likelihood, AIC, number of parameters, isSingular, lme4's
# convergence messages, and likelihood-ratio tests as anova(reduced, full); with R, lme4, Matrix
# and jsonlite versions. glmer defaults throughout: Laplace approximation (nAGQ = 1), ML.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
here <- local({
  args <- commandArgs(trailingOnly = FALSE)
  file <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(file) == 1) dirname(normalizePath(file)) else getwd()
})
args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args) >= 1) args[[1]] else file.path(here, "expected.json")

read <- function(name, ...) read.csv(file.path(here, name), stringsAsFactors = FALSE, ...)

# glmer, keeping its warnings and messages (and lme4's stored convergence messages) as strings
glmer_noting <- function(formula, data) {
  msgs <- character()
  fit <- withCallingHandlers(
    glmer(formula, data = data, family = binomial),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }
  )
  list(fit = fit, messages = unique(c(msgs, fit@optinfo$conv$lme4$messages)))
}

fit_case <- function(formula, data) {
  noted <- glmer_noting(as.formula(formula), data)
  fit <- noted$fit
  co <- summary(fit)$coefficients
  vc_all <- as.data.frame(VarCorr(fit))
  vc <- vc_all[is.na(vc_all$var2), ]
  cor <- vc_all[!is.na(vc_all$var2), ]
  list(
    formula = formula,
    nobs = nobs(fit),
    fixed = data.frame(term = rownames(co), estimate = co[, 1], se = co[, 2], z = co[, 3],
                       p_value = co[, 4], row.names = NULL),
    random = data.frame(group = vc$grp, name = vc$var1, variance = vc$vcov, sd = vc$sdcor),
    correlations = data.frame(group = cor$grp, name1 = cor$var1, name2 = cor$var2,
                              correlation = cor$sdcor),
    loglik = as.numeric(logLik(fit)),
    aic = AIC(fit),
    df = attr(logLik(fit), "df"),
    singular = isSingular(fit),
    messages = I(noted$messages),
    fit = fit,
    data = data
  )
}

lrt <- function(full, term) {
  reduced_formula <- update(formula(full$fit), as.formula(paste(". ~ . -", term)))
  dat <- full$data  # anova() insists that both fits were given one data object, by name
  refit <- glmer_noting(formula(full$fit), dat)$fit
  noted <- glmer_noting(reduced_formula, dat)
  reduced <- noted$fit
  a <- anova(reduced, refit)
  list(term = term, reduced_formula = deparse1(reduced_formula),
       chi2 = a$Chisq[2], df = a$Df[2], p_value = a$`Pr(>Chisq)`[2],
       loglik_reduced = as.numeric(logLik(reduced)), loglik_full = as.numeric(logLik(full$fit)),
       reduced_messages = I(noted$messages))
}

cases <- list()

# lme4's cbpp, binomial counts, and the same data as Bernoulli rows
cb <- read("cbpp.csv", colClasses = c(period = "character"))
cb$period <- factor(cb$period)
cases$cbpp <- fit_case("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb)
cases$cbpp$lrt <- lrt(cases$cbpp, "period")
cbb <- read("cbpp_bernoulli.csv", colClasses = c(period = "character"))
cbb$period <- factor(cbb$period)
cases$cbpp_bernoulli <- fit_case("y ~ period + (1 | herd)", cbb)

# Simulated reader study: one model per feature, regime reference level "overfitted"
rs <- read("reader_study.csv")
rs$present <- as.integer(as.logical(rs$present))
rs$regime <- factor(rs$regime, levels = c("overfitted", "correct"))
for (feature in sort(unique(rs$feature))) {
  d <- rs[rs$feature == feature, ]
  key <- paste0("reader_", feature)
  cases[[key]] <- fit_case("present ~ regime + reader + (1 | patient_id)", d)
  cases[[key]]$feature <- feature
  cases[[key]]$lrt <- lrt(cases[[key]], "regime")
}
# Crossed random effects: patients and GVRs
d <- rs[rs$feature == "cardiomegaly", ]
cases$crossed <- fit_case("present ~ regime + reader + (1 | patient_id) + (1 | gvr_id)", d)
cases$crossed$feature <- "cardiomegaly"
cases$crossed$lrt <- lrt(cases$crossed, "regime")

# Correlated random intercept and slope (the fit is singular: the correlation goes to -1)
cases$random_slope <- fit_case("present ~ regime + reader + (1 + reader | patient_id)", d)
cases$random_slope$feature <- "cardiomegaly"

# Singular fit: group variance estimated at 0
sg <- read("singular.csv")
cases$singular <- fit_case("y ~ x + (1 | g)", sg)

for (k in names(cases)) cases[[k]]$fit <- cases[[k]]$data <- NULL
result <- list(
  generated_by = "tests/analysis/r_mixed/reference.R",
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  matrix_version = as.character(packageVersion("Matrix")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  cases = cases
)
writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, pretty = TRUE, dataframe = "rows"),
           out_path)
