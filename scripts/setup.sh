#!/usr/bin/env bash
# Idempotent set-up for `make test` and `make reproduce` on Debian 12.
#   1. R with lme4, lmerTest and emmeans from Debian's packages (pymer4 0.8.2 needs all three).
#   2. A virtual environment .venv with the pinned Python stack (requirements.lock) and this package.
# Each step checks first and does nothing when already done, so a second run takes about a second.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# lme4, lmerTest, emmeans: pymer4 0.8.2. pROC, psych: the R oracles that produced the tests' reference values.
# chromium, chromium-driver: the reading page's test in a real browser (Selenium drives Debian's build).
DEB_PACKAGES=(r-base-core r-cran-lme4 r-cran-lmertest r-cran-emmeans r-cran-proc r-cran-psych chromium chromium-driver)
stamp="$VENV/.setup-stamp"

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---- 1. R from Debian ---------------------------------------------------------------------
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    die "apt-get is not available. Install R 4.x with the R packages lme4, lmerTest, emmeans, pROC and psych, and Chromium with its driver
       (Debian/Ubuntu: apt-get install ${DEB_PACKAGES[*]}), then rerun."
  fi
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}. Not running as root, so they cannot be installed here.
       Ask an administrator to run:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}
       then rerun this command."
  fi
  say "installing ${missing[*]} from Debian (about 1 minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v Rscript >/dev/null 2>&1 || die "Rscript is not on PATH after installing ${DEB_PACKAGES[*]}."

# ---- 2. Python virtual environment -------------------------------------------------------
"$PYTHON" - <<'PY' || die "Python 3.11 or newer is required (found $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11."
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/gvr" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create a virtual environment: install python3-venv (apt-get install python3-venv)."
fi
say "installing the pinned Python stack into $VENV (about 1 minute on a fresh machine)"
# torch==2.13.0 resolves to the CPU wheel kept on this workplace's machines (pip's find-links);
# an unpinned torch would download several GB of CUDA wheels instead.
"$VENV/bin/python" -m pip install -qq --disable-pip-version-check -r requirements.lock
"$VENV/bin/python" -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m pip check >/dev/null || die "pip check found broken requirements in $VENV (run $VENV/bin/pip check)."
echo "$want" > "$stamp"
say "done"
