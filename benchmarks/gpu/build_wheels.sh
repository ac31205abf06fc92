#!/usr/bin/env bash
# Build, on this machine, every wheel a lent GPU machine lacks, into .whl/ (git-ignored), for
# benchmarks/gpu/device_check.sh to install there with --no-index.
#
# The GPU machines carry JAX with CUDA, numpy, scipy, scikit-learn, pandas, matplotlib, typer, rich
# and pyyaml, but no Keras, optree, pydantic, Optuna or TensorFlow, and no package index. Their
# Python version is not known in advance, so the compiled wheels are fetched for CPython 3.10-3.13.
# It also copies the Sonar file from DLRUN_DATA_DIR (default ../shared/data) into .devcache/data/
# (git-ignored, never committed): the GPU machine has no network to download it.
# The device tool carries at most 64 MiB with the tree: the script fails if .whl/ passes 60 MiB.
#
# Usage: bash benchmarks/gpu/build_wheels.sh [PYTHON]   (PYTHON: default .venv/bin/python)
# Then, with the device tool: carry [".whl", ".devcache/data"], command
#   bash benchmarks/gpu/device_check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-.venv/bin/python}
OUT=.whl
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" -m pip wheel -q --no-deps -w "$OUT" .
# pure-Python packages: one wheel serves every Python version
PURE=(keras namex absl-py annotated-types typing-inspection typing-extensions jinja2 skops optuna
      alembic mako colorlog tqdm prettytable packaging pydantic)
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$OUT" "${PURE[@]}"
# compiled packages, for each CPython the device may run
COMPILED=(optree pydantic-core h5py markupsafe sqlalchemy greenlet wcwidth)
for v in 3.10 3.11 3.12 3.13; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$OUT" \
        --python-version "$v" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --implementation cp "${COMPILED[@]}"
done
size=$(du -sm "$OUT" | cut -f1)
echo "$OUT: $(ls "$OUT" | wc -l) wheels, ${size} MiB"
if [ "$size" -gt 60 ]; then
    echo "error: $OUT is ${size} MiB; the device tool carries at most 64 MiB with the tree" >&2
    exit 1
fi
DATA=${DLRUN_DATA_DIR:-../shared/data}
mkdir -p .devcache/data
cp "$DATA/sonar.csv" .devcache/data/
echo ".devcache/data: $(ls .devcache/data | tr '\n' ' ')"
