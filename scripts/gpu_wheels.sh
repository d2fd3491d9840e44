#!/usr/bin/env bash
# Download, here, the wheels the device machine's Python (3.12, with torch, numpy, scipy, typer, tqdm,
# pyarrow, imageio, matplotlib, pytest) lacks for scripts/gpu_check.sh, at requirements.lock's pins,
# into .whl/ (ignored by git through .git/info/exclude). Carry .whl to the device: run(carry=[".whl"]).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
NEEDED="pandera pydantic pydantic_core typeguard typing-inspection annotated-types pandas pytz tzdata"
pins=()
for name in $NEEDED; do
  pin=$(grep -i -E "^${name//[-_]/[-_]}==" requirements.lock) || { echo "no pin for $name in requirements.lock" >&2; exit 1; }
  pins+=("$pin")
done
mkdir -p .whl
PY=${PYTHON:-.venv/bin/python}
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "${pins[@]}"
du -sh .whl
