# stats::quantile (type 7), mean and sd reference values for tests/analysis/test_descriptive.py.
#   Rscript tests/analysis/r/descriptive_reference.R [out_dir]
source("tests/analysis/r/common.R")
d <- read.csv(file.path(data_dir, "descriptive.csv"))
probs <- c(0, 0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975, 1)
res <- list()
for (k in unique(d$case)) {
  v <- d$value[d$case == k]
  res[[k]] <- list(probs = probs, quantiles = as.numeric(quantile(v, probs, type = 7)), mean = mean(v), sd = sd(v))
}
write_expected(list(meta = meta("jsonlite"), descriptive = res), "descriptive_expected.json")
