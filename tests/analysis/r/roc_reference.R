# pROC reference values for tests/analysis/test_roc.py. From the repository root:
#   Rscript tests/analysis/r/roc_reference.R [out_dir]
source("tests/analysis/r/common.R")
suppressMessages(library(pROC))
asah <- read.csv(file.path(data_dir, "asah.csv"))
sim <- read.csv(file.path(data_dir, "roc_cases.csv"))
cases <- list()
for (p in c("s100b", "wfns", "ndka")) cases[[paste0("asah_", p)]] <- list(y = asah$y, s = asah[[p]])
for (k in unique(sim$case)) {
  d <- sim[sim$case == k, ]
  cases[[k]] <- list(y = d$y, s = d$score)
  cases[[paste0(k, "_b")]] <- list(y = d$y, s = d$score_b)
}
mk <- function(y, s) roc(y, s, levels = c(0, 1), direction = "<", quiet = TRUE)
res <- list()
for (k in names(cases)) {
  r <- mk(cases[[k]]$y, cases[[k]]$s)
  dl <- as.numeric(ci.auc(r, method = "delong", conf.level = 0.95))
  dl90 <- as.numeric(ci.auc(r, method = "delong", conf.level = 0.90))
  co <- coords(r, "all", ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE)
  entry <- list(auc = as.numeric(auc(r)), n_pos = length(r$cases), n_neg = length(r$controls),
                thresholds = co$threshold, sensitivity = co$sensitivity, specificity = co$specificity)
  if (length(r$cases) > 1 && length(r$controls) > 1) {
    entry$se_delong <- sqrt(var(r, method = "delong"))
    entry$delong_low <- dl[1]; entry$delong_high <- dl[3]
    entry$delong90_low <- dl90[1]; entry$delong90_high <- dl90[3]
  }
  res[[k]] <- entry
}
# stratified bootstrap (2000 replicates, seeded): compared with a statistical tolerance
boot <- list()
for (k in c("asah_s100b", "asah_ndka", "continuous", "ties")) {
  set.seed(42)
  r <- mk(cases[[k]]$y, cases[[k]]$s)
  b <- as.numeric(ci.auc(r, method = "bootstrap", boot.n = 2000, boot.stratified = TRUE, progress = "none"))
  boot[[k]] <- list(low = b[1], high = b[3])
}
# paired DeLong tests
pairs <- list(c("asah_s100b", "asah_wfns"), c("asah_s100b", "asah_ndka"), c("asah_wfns", "asah_ndka"),
              c("continuous", "continuous_b"), c("ties", "ties_b"), c("below_half", "below_half_b"),
              c("n5", "n5_b"), c("binary_score", "binary_score_b"), c("perfect", "perfect_b"))
tests <- list()
for (p in pairs) {
  r1 <- mk(cases[[p[1]]]$y, cases[[p[1]]]$s); r2 <- mk(cases[[p[2]]]$y, cases[[p[2]]]$s)
  t <- suppressWarnings(roc.test(r1, r2, method = "delong", paired = TRUE))
  tests[[paste(p, collapse = "__vs__")]] <- list(
    a = p[1], b = p[2], auc_a = as.numeric(t$estimate[1]), auc_b = as.numeric(t$estimate[2]),
    z = as.numeric(t$statistic), p_value = t$p.value, ci_low = t$conf.int[1], ci_high = t$conf.int[2])
}
write_expected(list(meta = meta(c("pROC", "jsonlite")), auc = res, bootstrap = boot, delong_test = tests),
               "roc_expected.json")
