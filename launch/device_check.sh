#!/usr/bin/env bash
# One check of avjax on an accelerator machine, in under 10 minutes, from the repository root:
#
#   bash launch/device_check.sh [--smoke] [--only=STEP,...] [--wheels=DIR] [OUT]
#
# Steps (each with its own time limit, all within BUDGET_S, default 570 s):
#   env         Python, jax and its devices; whether this jaxlib takes launch.job.GPU_XLA_FLAGS.
#   install     pip install -e . with the installed jax, jaxlib, jax-cuda* and nvidia-* pinned
#               (pip constraints), so the machine's CUDA JAX stays; fails if they changed.
#               --wheels=DIR: offline, from the wheels (and sdists) in DIR, built with the
#               machine's own setuptools and wheel.
#   data        avsynth heads and scenes, prepared once into the scratch folder.
#   bench_recon, bench_sync, bench_disentangle
#               python -m avjax.bench of each `accel` preset, with --json and --profile_dir.
#   train       recon:accel for 300 steps (checkpoints at 150 and 300), then the checkpoint
#               of step 300 removed and the run resumed from 150 to 300 (a restart): JAX's
#               compilation cache under the workdir must give the train step back.
# --smoke: the same on a CPU in a few minutes: `tiny` presets, 8 steps (resume from 4),
#   XLA's cheapest compilation, and `pip install --dry-run` (nothing installed).
# --only=STEP,...: run only these steps (e.g. --only=env,bench_recon after an install).
#
# OUT (default $OUT, else /tmp/avjax-device-check-out) gets at most 5 files:
# device_check.json (every step's status and seconds, the bench reports, the train
# run's figures), logs.tar.gz, and profile_NAME.tar.gz of each bench's trace. Scratch
# files go to ${TMPDIR:-/tmp}/avjax-device-check (its prepared datasets are kept for the
# next run). PYTHON (default python3) runs it all.
set -uo pipefail

mode=accel only='' wheels='' out=${OUT:-/tmp/avjax-device-check-out}
for arg in "$@"; do
  case $arg in
    --smoke) mode=tiny ;;
    --only=*) only=${arg#--only=} ;;
    --wheels=*) wheels=$(realpath "${arg#--wheels=}") ;;
    -*) echo "device_check.sh: unknown flag $arg" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=${TMPDIR:-/tmp}/avjax-device-check
# The prepared datasets stay for the next run (--only=...); the rest is this run's.
rm -rf "$work/logs" "$work/steps.tsv" "$work"/bench_*.json "$work"/profile_*
mkdir -p "$work/logs" "$out"
deadline=$(( $(date +%s) + ${BUDGET_S:-570} ))
export PYTHONUNBUFFERED=1
unset JAX_COMPILATION_CACHE_DIR  # bench's compile_s is a compile; train uses its own default.
if [ "$mode" = tiny ]; then
  steps=8 checkpoint=4 bench_args=(--steps=3 --warmup=1)
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0"
  XLA_FLAGS+=" --xla_llvm_disable_expensive_passes=true"
  data=(avsynth/heads_tiny avsynth/scenes_tiny)
else
  steps=300 checkpoint=150 bench_args=(--steps=10 --warmup=3)
  data=(avsynth/heads avsynth/scenes)
fi
# Two prefetched batches per Grain worker (accel: 16 workers) instead of 8: the bench
# drains and outnumbers what the workers hold ready, 4x fewer batches to make.
common=(--config.data.data_dir="$work/tfds" --config.data.prefetch_buffer=2)

wanted() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

step() {  # step NAME LIMIT_S FUNCTION...: runs FUNCTION into logs/NAME.log, within the budget.
  local name=$1 limit=$2 left=$(( deadline - $(date +%s) )) start rc ms
  shift 2
  wanted "$name" || return 0
  (( left < limit )) && limit=$left
  if (( limit < 10 )); then
    printf '%s\tskipped\t0\n' "$name" >> "$work/steps.tsv"
    return 1
  fi
  start=$(date +%s%N)
  step_end=$(( $(date +%s) + limit ))
  "$@" > "$work/logs/$name.log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%s\t%s\t%s\n' "$name" "$rc" "$ms" >> "$work/steps.tsv"
  echo "device_check: $name rc=$rc ($(( ms / 1000 )) s)" >&2
  return "$rc"
}

t() {  # t COMMAND...: COMMAND, stopped (rc 124) when its step's time is up.
  local left=$(( step_end - $(date +%s) ))
  (( left > 0 )) || return 124
  timeout --kill-after=15 "$left" "$@"
}

check_env() {
  t "$PY" -c 'import sys, jax; print(sys.version, "\njax", jax.__version__, jax.devices())'
  command -v nvidia-smi > /dev/null &&
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  local gpu_flags
  gpu_flags=$("$PY" -c 'from launch import job; print(" ".join(job.GPU_XLA_FLAGS))') || return 1
  XLA_FLAGS="$gpu_flags" t "$PY" -c 'import jax; jax.numpy.zeros(1).block_until_ready()' &&
    echo "GPU_XLA_FLAGS accepted: $gpu_flags"
}

jax_pins() {  # The installed jax packages and CUDA libraries, as NAME==VERSION lines.
  "$PY" -m pip freeze |
    grep -iE '^(jax|jaxlib|jax-cuda[0-9]+-(plugin|pjrt)|nvidia-[a-z0-9-]+)==' | sort
}

install() {
  jax_pins > "$work/pins.txt"
  grep -i '^jax==' "$work/pins.txt" ||
    { echo "no jax installed: install the machine's own jax first"; return 1; }
  local args=(-e . -c "$work/pins.txt")
  [ -n "$wheels" ] && args+=(--no-index --find-links "$wheels" --no-build-isolation)
  [ "$mode" = tiny ] && args+=(--dry-run)
  t "$PY" -m pip install "${args[@]}" || return 1
  jax_pins | diff "$work/pins.txt" - && echo "jax packages unchanged"
}

prepare() {
  t "$PY" -m avjax.data.prepare "${data[@]}" --data_dir="$work/tfds" --file_format=array_record
}

bench() {  # bench NAME: the benchmark of configs/NAME.py's preset, its trace and its JSON.
  t "$PY" -m avjax.bench --config="configs/$1.py:$mode" "${common[@]}" "${bench_args[@]}" \
      --json="$work/bench_$1.json" --profile_dir="$work/profile_$1"
}

train() {  # A run to $steps, then a restart from the checkpoint at $checkpoint.
  local run=(-m avjax.main --config="configs/recon.py:$mode" --workdir="$work/recon_run"
             "${common[@]}" --config.total_steps="$steps" --config.checkpoint_every="$checkpoint")
  rm -rf "$work/recon_run"
  JAX_LOG_COMPILES=1 t "$PY" "${run[@]}" > "$work/logs/train_first.log" 2>&1 || return 1
  rm -rf "$work/recon_run/checkpoints/$steps"
  JAX_LOG_COMPILES=1 t "$PY" "${run[@]}" > "$work/logs/train_resume.log" 2>&1
}

step env 60 check_env
step install 120 install
step data 120 prepare
for name in recon sync disentangle; do
  step "bench_$name" 110 bench "$name"
done
step train 200 train

"$PY" - "$work" "$out/device_check.json" "$mode" <<'EOF'
"""device_check.json: the steps, the bench reports and the train run's figures."""
import json, pathlib, re, sys
work, dest, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]

def text(path):
  return path.read_text(errors='replace') if path.exists() else ''

def train_run(log):
  """What a train log says: where it resumed, its compile times, its cache hits."""
  compiles = re.findall(r'Finished XLA compilation of jit\((\w+)\) in ([0-9.]+) sec', log)
  resumed = re.search(r'resumed from \S+ at step (\d+)', log)
  return {'resumed_from_step': int(resumed.group(1)) if resumed else None,
          'compile_s': {name: float(s) for name, s in compiles if name in
                        ('init_state', 'train_step', 'evaluate')},
          'cache_hits': sorted(set(re.findall(r"compilation cache hit for '(\w+)'", log)))}

steps = [dict(zip(('name', 'rc', 'ms'), line.split('\t')))
         for line in text(work / 'steps.tsv').splitlines()]
rows = [json.loads(l) for l in text(work / 'recon_run' / 'metrics.jsonl').splitlines()]
losses = {}
for row in rows:
  if 'loss' in row:
    losses.setdefault(row['step'], []).append(row['loss'])
last = max(losses, default=None)
report = {
    'mode': mode,
    'steps': [{'name': s['name'], 'rc': int(s['rc']) if s['rc'].isdigit() else s['rc'],
               'seconds': int(s['ms']) / 1000} for s in steps],
    'env': text(work / 'logs' / 'env.log').splitlines()[-12:],
    'bench': {p.stem.removeprefix('bench_'): json.loads(p.read_text())
              for p in sorted(work.glob('bench_*.json'))},
    'train': {
        'first': train_run(text(work / 'logs' / 'train_first.log')),
        'resume': train_run(text(work / 'logs' / 'train_resume.log')),
        'last_step': last,
        # The loss of the last step, uninterrupted and after the restart: equal up to
        # the device's nondeterminism if the restart resumed at the exact data position.
        'last_step_losses': losses.get(last),
        'steps_per_sec': next((r['steps_per_sec'] for r in reversed(rows)
                               if 'steps_per_sec' in r), None),
    },
}
dest.write_text(json.dumps(report, indent=1) + '\n')
print(json.dumps({k: report[k] for k in ('steps', 'train')}, indent=1))
EOF
tar -czf "$out/logs.tar.gz" -C "$work" logs steps.tsv $(cd "$work" && ls pins.txt 2>/dev/null)
for trace in "$work"/profile_*; do
  [ -d "$trace" ] || continue
  tar -czf "$out/${trace##*/}.tar.gz" -C "$work" "${trace##*/}"
  if (( $(stat -c %s "$out/${trace##*/}.tar.gz") > 15 * 2**20 )); then  # $OUT takes 16 MiB a file.
    rm "$out/${trace##*/}.tar.gz"
    echo "device_check: ${trace##*/} is over 15 MiB compressed; left in $trace" >&2
  fi
done
awk -F'\t' '$2 != 0 {bad = 1} END {exit bad}' "$work/steps.tsv"  # 0: every step passed.
