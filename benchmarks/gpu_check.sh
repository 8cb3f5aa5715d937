#!/usr/bin/env bash
# The GPU figures benchmarks/RESULTS.md lacks, in one run of at most 10 minutes on one H100:
#   - training step, bf16 autocast, eager and torch.compile: ViT-B-32 and ViT-B-16 (samples/s, MFU), and the whole
#     trainer (Ray Data decoding 256 px JPEGs on the host's CPUs -> 1 Ray Train GPU worker): samples/s, MFU, data-wait;
#   - zero-shot evaluation on CUDA (bench_eval.py; CLIP_benchmark's side too when $CB_PYTHON exists);
#   - the build's embed stage (Ray actor, bf16) against a plain open_clip loop, ViT-B-32, with GPU utilisation.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from anywhere (runs in the repo root)
#   bash benchmarks/gpu_check.sh --dry-run    # anywhere, no GPU: every command line parses (--parse-only); runs nothing
#
# Environment: PY (default .venv/bin/python), OUT (default bench-out/gpu), CB_PYTHON (a venv with clip-benchmark),
# EXTRA_ARGS (appended to every benchmark command, e.g. "--steps 5" for a quicker look).
# stdout: a RESULTS.md-ready section (also written to $OUT/gpu_check.md); each command's log goes to $OUT/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench-out/gpu}
CB_PYTHON=${CB_PYTHON:-/tmp/cb/bin/python}
EXTRA_ARGS=${EXTRA_ARGS:-}
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1

EVAL="benchmarks/bench_eval.py --ours-only --device cuda --copies 4 --repeats 3"
if [[ -x "$CB_PYTHON" ]]; then EVAL="benchmarks/bench_eval.py --cb-python $CB_PYTHON --device cuda --repeats 3"; fi

# seconds allowed | command (python script + arguments). The limits add up to 560 s: under 10 minutes with start-up.
COMMANDS=(
  "200|benchmarks/bench_train.py --gpu --with-data --model ViT-B-32 --batch 256 --steps 30 --skip 8 --samples 8192"
  "190|benchmarks/bench_train.py --gpu --with-data --model ViT-B-16 --batch 128 --steps 20 --skip 8 --samples 4096"
  "80|$EVAL"
  "90|benchmarks/bench_embed.py --device cuda --model ViT-B-32 --images 4096 --batch 256 --parts 4"
)

report="$OUT/gpu_check.md"
failed=0
if [[ $DRY == 0 ]]; then
  mkdir -p "$OUT"
  {
    echo "## GPU check (\`bash benchmarks/gpu_check.sh\`)"
    echo
    echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), \
$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi'), \
$(nproc) CPUs."
  } >"$report"
fi
for entry in "${COMMANDS[@]}"; do
  limit=${entry%%|*}
  cmd="${entry#*|} $EXTRA_ARGS"
  name=$(basename "${cmd%% *}" .py)
  if [[ $DRY == 1 ]]; then
    # shellcheck disable=SC2086  # word splitting of the command line is the point
    if parsed=$($PY $cmd --parse-only 2>&1); then
      echo "ok: $cmd -> $parsed"
    else
      echo "DOES NOT PARSE: $cmd" >&2
      echo "$parsed" >&2
      failed=1
    fi
    continue
  fi
  echo ">>> $cmd (limit ${limit}s)" >&2
  log="$OUT/$name.$(date +%s).log"
  # shellcheck disable=SC2086
  if ! timeout "$limit" $PY $cmd >"$log.out" 2>"$log"; then
    echo "FAILED or over ${limit}s: $cmd (log: $log)" >&2
    failed=1
  fi
  { echo; echo "\`$PY $cmd\`"; grep -E '^(#|\||[A-Za-z0-9-]+: .*GFLOP|agreement|templates)' "$log.out" || true; } >>"$report"
done
[[ $DRY == 0 ]] && cat "$report"
exit $failed
