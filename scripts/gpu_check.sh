#!/usr/bin/env bash
# The accelerator check, as one script: a GPU-relevant subset of the tests, the engine at
# a size that fills the device, and a 10^7-config sweep streamed to Parquet; figures in
# results/bench/gpu-check-<date>.json. Runs as it is where JAX (with CUDA), pandas,
# pyarrow, optax, matplotlib and scikit-learn are installed; installs nothing. Within 10
# minutes on an H200.
#
#   bash scripts/gpu_check.sh          # on the GPU machine
#   bash scripts/gpu_check.sh --cpu    # anywhere, on the CPU at a tiny size (a test runs this)
#   bash scripts/gpu_check.sh --cpu --out DIR
set -euo pipefail
cd "$(dirname "$0")/.."
mode="gpu"
out="results/bench"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode="cpu" ;;
    --out) out="$2"; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (use --cpu, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
json="$out/gpu-check-$(date +%F).json"
if [ "$mode" = "cpu" ]; then
  export JAX_PLATFORMS=cpu
  json="$out/gpu-check-cpu.json"
  tests=("tests/test_jacobian.py::test_top_eigenvalue_is_exact_whatever_the_gap[16]")
  flag=(--cpu)
else
  python -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" || {
    echo "gpu_check.sh: JAX sees no GPU here (jax.default_backend() is not 'gpu'); run with --cpu" >&2
    exit 2
  }
  tests=(tests/test_jacobian.py tests/test_lecture.py tests/test_statistics.py tests/test_engine.py)
  flag=()
fi
echo "gpu_check: tests ${tests[*]}" >&2
set +e
timeout 240 python -m pytest -p no:cacheprovider "${tests[@]}" > "$out/gpu-check-tests.log" 2>&1
tests_rc=$?
set -e
tail -3 "$out/gpu-check-tests.log" >&2
timeout 420 python scripts/gpu_check.py "$json" "${flag[@]}"
python - "$json" "$tests_rc" <<'PY'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
figures = json.load(open(path))
figures["tests_exit_code"] = rc
json.dump(figures, open(path, "w"), indent=2)
print(f"gpu_check: figures in {path}; tests exit code {rc}")
PY
