# Seeded input data for the R oracles of tests/analysis. Run from the repository root:
#   Rscript tests/analysis/r/make_data.R
# Writes tests/analysis/r/data/*.csv (committed; rerunning reproduces them bit for bit).
suppressMessages(library(pROC))
out <- "tests/analysis/r/data"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
w <- function(df, name) write.csv(df, file.path(out, name), row.names = FALSE)

# ---- ROC: pROC's aSAH, exported as is (outcome 1 = Poor)
data(aSAH)
w(data.frame(y = as.integer(aSAH$outcome == "Poor"), s100b = aSAH$s100b, wfns = as.integer(aSAH$wfns),
             ndka = aSAH$ndka), "asah.csv")

# ---- ROC: simulated cases, long format (case, y, score, score_b)
set.seed(20190201)
roc_case <- function(case, y, score, score_b) data.frame(case = case, y = y, score = score, score_b = score_b)
y <- rep(0:1, c(120, 80))
sim <- list(
  roc_case("continuous", y, signif(rnorm(200) + 1.2 * y, 8), signif(rnorm(200) + 0.6 * y, 8)),
  roc_case("ties", y, round(rnorm(200) + y), round(2 * rnorm(200) + y)),
  roc_case("below_half", y, signif(rnorm(200) - 0.7 * y, 8), signif(rnorm(200), 8)),
  roc_case("perfect", c(0, 0, 0, 0, 1, 1, 1), c(0.1, 0.2, 0.2, 0.3, 0.5, 0.7, 0.7),
           c(0.5, 0.1, 0.3, 0.2, 0.7, 0.2, 0.6)),
  roc_case("n5", c(0, 1, 0, 1, 0), c(0.3, 0.6, 0.6, 0.2, 0.1), c(1, 2, 3, 4, 5)),
  roc_case("binary_score", y, as.integer(runif(200) < 0.3 + 0.4 * y), round(rnorm(200) + y, 1))
)
w(do.call(rbind, sim), "roc_cases.csv")

# ---- kappa: case, a, b (ratings coded as integers)
set.seed(19600401)
truth <- rbinom(100, 1, 0.4)
flip <- function(x, p) ifelse(runif(length(x)) < p, 1 - x, x)
ord <- sample(1:4, 80, replace = TRUE, prob = c(.2, .3, .3, .2))
jitter4 <- function(x) pmin(4, pmax(1, x + sample(-1:1, length(x), replace = TRUE, prob = c(.2, .6, .2))))
cat3 <- sample(1:3, 60, replace = TRUE)
kap <- list(
  data.frame(case = "binary", a = flip(truth, 0.1), b = flip(truth, 0.2)),
  data.frame(case = "ordinal4", a = jitter4(ord), b = jitter4(ord)),
  data.frame(case = "nominal3", a = cat3, b = ifelse(runif(60) < 0.6, cat3, sample(1:3, 60, replace = TRUE))),
  data.frame(case = "perfect", a = c(1, 1, 0, 0, 1, 0, 1, 1), b = c(1, 1, 0, 0, 1, 0, 1, 1)),
  data.frame(case = "negative", a = c(1, 0, 1, 0, 1, 0, 1, 0, 1, 1), b = c(0, 1, 0, 1, 0, 1, 1, 0, 0, 0)),
  data.frame(case = "n5", a = c(1, 2, 3, 1, 2), b = c(1, 2, 3, 2, 2)),
  data.frame(case = "one_constant", a = c(1, 1, 1, 1, 1, 1), b = c(1, 0, 1, 1, 0, 1)),
  data.frame(case = "unused_level", a = c(1, 1, 2, 2, 1, 2, 1, 1, 2, 4), b = c(1, 2, 2, 2, 1, 1, 1, 2, 2, 4))
)
w(do.call(rbind, kap), "kappa_cases.csv")

# ---- rank tests: case, group (x or y), value
set.seed(19470301)
wil <- function(case, x, y) rbind(data.frame(case = case, group = "x", value = x),
                                  data.frame(case = case, group = "y", value = y))
rk <- list(
  wil("small_exact", signif(rnorm(8), 8), signif(rnorm(11) + 0.8, 8)),
  wil("small_ties", c(1, 2, 2, 3, 4, 4, 5), c(2, 3, 5, 6, 6, 7, 8, 8)),
  wil("n5_exact", c(1.5, 3.2, 0.7, 2.2, 4.1), c(2.9, 5.5, 6.1, 3.3, 4.8)),
  wil("large_normal", signif(rnorm(60, 70, 12), 8), signif(rnorm(55, 66, 12), 8)),
  wil("age_like", round(rnorm(45, 72, 10)), round(rnorm(40, 69, 12))),
  wil("separated_exact", c(1, 2, 3, 4), c(5, 6, 7, 8, 9, 10)),
  wil("one_each", 1.5, 2.5)
)
w(do.call(rbind, rk), "wilcox_cases.csv")

# ---- contingency tables: case, row, col, count
tab <- function(case, m) data.frame(case = case, row = as.vector(row(m)), col = as.vector(col(m)), count = as.vector(m))
ct <- list(
  tab("cardiomegaly", matrix(c(153, 64, 47, 136), 2)),
  tab("effusion", matrix(c(47, 16, 153, 184), 2)),
  tab("opacity", matrix(c(35, 12, 165, 188), 2)),
  tab("no_chf", matrix(c(40, 127, 160, 73), 2)),
  tab("small_expected", matrix(c(3, 1, 1, 3), 2)),
  tab("yates_capped", matrix(c(10, 10, 10, 11), 2)),
  tab("zero_cell", matrix(c(0, 5, 6, 4), 2)),
  tab("r2x3", matrix(c(3, 1, 4, 6, 2, 5), 2)),
  tab("r3x3", matrix(c(2, 3, 1, 4, 0, 2, 1, 3, 5), 3))
)
w(do.call(rbind, ct), "tables.csv")

# ---- one-way tables for the goodness-of-fit test: case, count, p (NA: uniform), rescale_p
gof <- function(case, count, p = NA, rescale_p = FALSE)
  data.frame(case = case, count = count, p = p, rescale_p = rescale_p)
w(rbind(gof("two_uniform", c(71, 42)),
        gof("three_given_p", c(20, 30, 50), c(0.25, 0.25, 0.5)),
        gof("four_uniform", c(18, 25, 31, 26)),
        gof("small_expected", c(3, 1, 2)),
        gof("zero_count", c(0, 7, 5)),
        gof("rescaled", c(10, 20, 30), c(1, 2, 2), rescale_p = TRUE)), "goodness_of_fit.csv")

# ---- descriptive: case, value
set.seed(19960101)
w(rbind(data.frame(case = "bnp_like", value = signif(exp(rnorm(37, 5, 1.2)), 8)),
        data.frame(case = "small", value = c(3, 1, 2, 8)),
        data.frame(case = "ties", value = c(5, 5, 5, 1, 9, 9))), "descriptive.csv")
