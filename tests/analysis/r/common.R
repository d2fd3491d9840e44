# Shared helpers of the R oracle scripts (sourced by *_reference.R).
suppressMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
data_dir <- "tests/analysis/r/data"
out_dir <- if (length(args) >= 1) args[[1]] else "tests/analysis/r/expected"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
meta <- function(pkgs = character()) {
  m <- list(r_version = R.version.string, generated_by = "tests/analysis/r")
  for (p in pkgs) m[[paste0(p, "_version")]] <- as.character(packageVersion(p))
  m
}
write_expected <- function(x, name) {
  # 17 significant digits: doubles round-trip exactly; non-finite numbers as strings "Inf", "-Inf", "NaN"
  writeLines(toJSON(x, digits = I(17), auto_unbox = TRUE, na = "string", pretty = TRUE),
             file.path(out_dir, name))
}
