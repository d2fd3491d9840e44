# stats::wilcox.test reference values for tests/analysis/test_rank_tests.py. From the repository root:
#   Rscript tests/analysis/r/rank_tests_reference.R [out_dir]
source("tests/analysis/r/common.R")
d <- read.csv(file.path(data_dir, "wilcox_cases.csv"))
res <- list()
for (k in unique(d$case)) {
  x <- d$value[d$case == k & d$group == "x"]; y <- d$value[d$case == k & d$group == "y"]
  for (alt in c("two.sided", "less", "greater")) for (correct in c(TRUE, FALSE)) for (ex in c("NULL", "FALSE")) {
    exact <- if (ex == "NULL") NULL else FALSE
    t <- suppressWarnings(wilcox.test(x, y, alternative = alt, correct = correct, exact = exact))
    res[[length(res) + 1]] <- list(case = k, alternative = alt, correct = correct, exact = ex,
                                   statistic = as.numeric(t$statistic), p_value = t$p.value, method = t$method)
  }
}
# the null distribution itself
pw <- list()
for (mn in list(c(4, 5), c(8, 11), c(12, 3), c(49, 49), c(30, 45))) {
  q <- unique(round(seq(0, mn[1] * mn[2], length.out = 9)))
  pw[[length(pw) + 1]] <- list(m = mn[1], n = mn[2], q = q, lower = pwilcox(q, mn[1], mn[2]),
                               upper = pwilcox(q, mn[1], mn[2], lower.tail = FALSE))
}
write_expected(list(meta = meta("jsonlite"), wilcox = res, pwilcox = pw), "rank_tests_expected.json")
