# psych::cohen.kappa reference values for tests/analysis/test_agreement.py. From the repository root:
#   Rscript tests/analysis/r/agreement_reference.R [out_dir]
source("tests/analysis/r/common.R")
suppressMessages(library(psych))
d <- read.csv(file.path(data_dir, "kappa_cases.csv"))
res <- list()
for (k in unique(d$case)) {
  x <- d[d$case == k, c("a", "b")]
  lev <- sort(unique(c(x$a, x$b)))
  len <- length(lev)
  lin <- 1 - abs(outer(1:len, 1:len, "-")) / (len - 1)
  for (level in c(0.95, 0.90)) {
    q <- suppressWarnings(suppressMessages(cohen.kappa(x, alpha = 1 - level)))
    l <- suppressWarnings(suppressMessages(cohen.kappa(x, w = lin, alpha = 1 - level)))
    tag <- sprintf("%s@%g", k, level)
    res[[tag]] <- list(
      case = k, level = level, n = q$n.obs,
      none = list(kappa = q$kappa, se = sqrt(q$var.kappa), low = q$confid[1, 1], high = q$confid[1, 3]),
      quadratic = list(kappa = q$weighted.kappa, se = sqrt(q$var.weighted), low = q$confid[2, 1], high = q$confid[2, 3]),
      linear = list(kappa = l$weighted.kappa, se = sqrt(l$var.weighted), low = l$confid[2, 1], high = l$confid[2, 3]))
  }
}
write_expected(list(meta = meta(c("psych", "jsonlite")), kappa = res), "agreement_expected.json")
