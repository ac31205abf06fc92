#!/usr/bin/env bash
# The GPU checks of the stacked engine, as one script for a lent GPU machine (see README, GPU).
#
# Run on the device machine in a copy of this tree that carries .whl/ and .devcache/data/ (made
# here by benchmarks/gpu/build_wheels.sh). It installs dlrun from the wheels with --no-index into a
# virtualenv that sees the system's JAX and CUDA, then times whole processes:
#   1. Sonar 30 repeats x 10 folds x 300 epochs (`dlrun cv`), empty compilation cache, then warm;
#   2. a 10-point learning-rate sweep of the same (10 x 300 models, `dlrun sweep`).
# Every figure goes to $OUT/gpu_check.txt (and stdout); each run's summary.json and env.json are
# kept under $OUT/runs/.
#
# Environment: OUT (default ./gpu_out), REPEATS and EPOCHS (default 30 and 300), DLRUN_DEVICE_PY (an interpreter that already has the
# device's packages, instead of making /tmp/dlgpu; for trying the script on another machine).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT/runs"
LOG="$OUT/gpu_check.txt"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
WORK=$(mktemp -d)
export DLRUN_DATA_DIR="$PWD/.devcache/data"
export DLRUN_COMPILE_CACHE="$WORK/jax-cache"

if [ -n "${DLRUN_DEVICE_PY:-}" ]; then
    PY=$DLRUN_DEVICE_PY
else
    python3 -m venv --system-site-packages /tmp/dlgpu || exit 1
    PY=/tmp/dlgpu/bin/python
fi
say "python: $($PY --version 2>&1)"
if ! $PY -m pip install -q --no-index --find-links .whl dlrun >"$OUT/pip.txt" 2>&1; then
    say "pip install failed:"; tail -20 "$OUT/pip.txt" | tee -a "$LOG"; exit 1
fi
DLRUN="$(dirname "$PY")/dlrun"
say "$(KERAS_BACKEND=jax $PY -c 'import jax, keras; print("jax", jax.__version__, "keras", keras.__version__, "devices", jax.devices())' 2>&1 | tail -1)"
command -v nvidia-smi >/dev/null && say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"

# time_run LABEL ARGS...: one whole dlrun process, its wall time and the headline it printed
time_run() {
    local label=$1; shift
    local dir="$WORK/$label" t0 ms rc f
    t0=$(date +%s%N)
    "$DLRUN" "$@" --out "$dir" --log-every 0 >"$OUT/runs/$label.txt" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    (cd "$dir" 2>/dev/null && find . -maxdepth 3 \( -name summary.json -o -name env.json -o -name sweep.csv \)) |
        while read -r f; do mkdir -p "$OUT/runs/$label/$(dirname "$f")" && cp "$dir/$f" "$OUT/runs/$label/$f"; done
    say "$(printf '%-26s %4d.%03d s  exit %s  %s' "$label" $((ms / 1000)) $((ms % 1000)) "$rc" \
        "$(grep -m1 -E '^accuracy ' "$OUT/runs/$label.txt")")"
    grep -h -E "engine call" "$OUT/runs/$label.txt" | tail -1 | tee -a "$LOG"
    [ "$rc" -eq 0 ] || tail -15 "$OUT/runs/$label.txt" | tee -a "$LOG"
}

SONAR=(configs/sonar_baseline.yaml --set evaluation.mode=repeated_kfold --set "evaluation.repeats=${REPEATS:-30}"
       --set "training.epochs=${EPOCHS:-300}")
SIZE="${REPEATS:-30}x10x${EPOCHS:-300}"
time_run "sonar_${SIZE}_cold" cv "${SONAR[@]}"
time_run "sonar_${SIZE}_warm" cv "${SONAR[@]}"
time_run "lr_sweep_10_points_${SIZE}" sweep "${SONAR[@]}" \
    --grid compile.optimizer.SGD.learning_rate=0.001,0.002,0.003,0.005,0.007,0.01,0.02,0.03,0.05,0.1
say "engine, backend and device of the cold run: $(grep -h -o -E '"(engine|device|backend|jax)[a-z_]*": *"[^"]*"' \
    "$OUT/runs/sonar_${SIZE}_cold"/*.json 2>/dev/null | sort -u | tr '\n' ' ')"
rm -rf "$WORK"
