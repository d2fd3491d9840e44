# Seeded data for the mixed-model reference tests (tests/analysis/test_mixed_models.py).
#
# Run from anywhere:  Rscript tests/analysis/r_mixed/make_data.R [output_directory]
# Writes, beside this script (or into output_directory):
#   cbpp.csv            lme4's cbpp data set (Lesnoff et al. 2004), one row per herd and period
#   cbpp_bernoulli.csv  the same data expanded to one 0/1 row per animal (same fixed effects)
#   reader_study.csv    a simulated blinded reading like the paper's Table 2: 2 readers x 2 rounds x
#                       100 GVRs (50 patients x 2 models) x 4 features
#   singular.csv        Bernoulli data without a group effect whose glmer fit is singular
# Then run reference.R to regenerate the expected values.

suppressPackageStartupMessages(library(lme4))
here <- local({
  args <- commandArgs(trailingOnly = FALSE)
  file <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(file) == 1) dirname(normalizePath(file)) else getwd()
})
args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[[1]] else here
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

# --- cbpp -----------------------------------------------------------------------------------------
data(cbpp, package = "lme4")
cb <- data.frame(herd = sprintf("h%02d", as.integer(as.character(cbpp$herd))),
                 period = as.integer(as.character(cbpp$period)),
                 incidence = cbpp$incidence, size = cbpp$size)
write.csv(cb, file.path(out_dir, "cbpp.csv"), row.names = FALSE)
rows <- lapply(seq_len(nrow(cb)), function(i) {
  data.frame(herd = cb$herd[i], period = cb$period[i],
             y = c(rep(1L, cb$incidence[i]), rep(0L, cb$size[i] - cb$incidence[i])))
})
write.csv(do.call(rbind, rows), file.path(out_dir, "cbpp_bernoulli.csv"), row.names = FALSE)

# --- simulated reader study -----------------------------------------------------------------------
set.seed(20190201)
n_patients <- 50
features <- c("cardiomegaly", "pleural_effusion", "airspace_opacity", "no_chf_features")
# Pooled frequencies of Table 2 (correctly trained, overfitted)
p_correct <- c(0.765, 0.235, 0.175, 0.20)
p_overfit <- c(0.32, 0.08, 0.06, 0.635)
patient_sd <- 0.8
gvr_sd <- 1.0
reader_shift <- c(A = -0.4, B = 0.4)
patients <- sprintf("p%03d", seq_len(n_patients))
u_patient <- setNames(rnorm(n_patients, 0, patient_sd), patients)
gvr <- data.frame(patient_id = rep(patients, each = 2),
                  regime = rep(c("correct", "overfitted"), times = n_patients))
gvr$gvr_id <- sprintf("g%03d", sample(nrow(gvr)))  # blinded order
out <- list()
for (f in seq_along(features)) {
  v_gvr <- rnorm(nrow(gvr), 0, gvr_sd)
  base <- ifelse(gvr$regime == "correct", qlogis(p_correct[f]), qlogis(p_overfit[f]))
  for (reader in c("A", "B")) for (round in 1:2) {
    eta <- base + reader_shift[[reader]] + u_patient[gvr$patient_id] + v_gvr
    out[[length(out) + 1]] <- data.frame(
      reader = reader, round = round, gvr_id = gvr$gvr_id, regime = gvr$regime,
      patient_id = gvr$patient_id, feature = features[f],
      present = rbinom(nrow(gvr), 1, plogis(eta)) == 1, simulated = TRUE)
  }
}
rs <- do.call(rbind, out)
rs <- rs[order(rs$feature, rs$reader, rs$round, rs$gvr_id), ]
write.csv(rs, file.path(out_dir, "reader_study.csv"), row.names = FALSE)

# --- a singular fit -------------------------------------------------------------------------------
# No group effect, 4 observations per group: the first seed whose fit puts the variance at 0.
for (seed in 1:1000) {
  set.seed(seed)
  d <- data.frame(g = rep(sprintf("g%02d", 1:30), each = 4), x = rep(c(0, 1), 60))
  d$y <- rbinom(nrow(d), 1, plogis(-0.3 + 0.8 * d$x))
  fit <- suppressMessages(glmer(y ~ x + (1 | g), data = d, family = binomial))
  if (isSingular(fit)) break
}
d$seed <- seed
write.csv(d, file.path(out_dir, "singular.csv"), row.names = FALSE)
