# stats::chisq.test and stats::fisher.test reference values for tests/analysis/test_contingency.py.
#   Rscript tests/analysis/r/contingency_reference.R [out_dir]
source("tests/analysis/r/common.R")
d <- read.csv(file.path(data_dir, "tables.csv"))
res <- list()
for (k in unique(d$case)) {
  s <- d[d$case == k, ]
  m <- matrix(0, max(s$row), max(s$col)); m[cbind(s$row, s$col)] <- s$count
  entry <- list(case = k)
  for (correct in c(TRUE, FALSE)) {
    warned <- FALSE
    t <- withCallingHandlers(chisq.test(m, correct = correct),
                             warning = function(w) { warned <<- TRUE; invokeRestart("muffleWarning") })
    entry[[if (correct) "chisq_correct" else "chisq_plain"]] <- list(
      statistic = as.numeric(t$statistic), df = as.numeric(t$parameter), p_value = t$p.value,
      method = t$method, warned = warned, expected = as.vector(t$expected))
  }
  f <- fisher.test(m)
  entry$fisher <- list(p_value = f$p.value)
  if (all(dim(m) == 2)) {
    entry$fisher$odds_ratio <- as.numeric(f$estimate)
    entry$fisher$ci_low <- f$conf.int[1]; entry$fisher$ci_high <- f$conf.int[2]
  }
  res[[k]] <- entry
}
# One-way tables: chisq.test(x, p = p, rescale.p = ...), the goodness-of-fit test.
g <- read.csv(file.path(data_dir, "goodness_of_fit.csv"))
gof <- list()
for (k in unique(g$case)) {
  s <- g[g$case == k, ]
  warned <- FALSE
  args <- list(s$count)
  if (!all(is.na(s$p))) args <- c(args, list(p = s$p, rescale.p = s$rescale_p[1]))
  t <- withCallingHandlers(do.call(chisq.test, args),
                           warning = function(w) { warned <<- TRUE; invokeRestart("muffleWarning") })
  gof[[k]] <- list(statistic = as.numeric(t$statistic), df = as.numeric(t$parameter), p_value = t$p.value,
                   method = t$method, warned = warned, expected = as.vector(t$expected))
}
write_expected(list(meta = meta("jsonlite"), tables = res, goodness_of_fit = gof), "contingency_expected.json")
