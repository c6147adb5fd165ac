#!/usr/bin/env bash
# Predictor validation on one GPU (issue 13): the 2B GRPO recipe's programs (update, reference log-probs, sampler,
# and the sampler with one new token to time the decode apart) compiled for this machine's first GPU and timed
# on random weights, beside the roofline's prediction from the GPU's own HLO (datasheet and measured chip).
#   bash bench/gpu_validate.sh OUTDIR [VARIANT ...]   (CONFIG=configs/X.py[:arg] PY=python3 TIMEOUT=500)
# VARIANT: XLA GPU settings, one run each: base (default), dsf (dynamic-slice fusion: gemms read scanned layer
# slices in place), cb (WHILE/CONDITIONAL in CUDA command buffers), both, unroll / scan (model.decode_unroll on /
# off; the default "auto" is on for GPUs). PROGRAMS=sampler times only the rollout. OUTDIR/VARIANT.json, .log;
# the first variant also writes its compiled HLO to OUTDIR/hlo. Wheels in .whl/ (ml-collections; flax at the project's pin,
# kept only if it imports beside the image's jax) are installed to /tmp first when present.
set -uo pipefail
out=${1:-${OUT:-/tmp/gpu_validate}}
shift || true
variants=("${@:-base}")
py=${PY:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.9
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,driver_version --format=csv 2>/dev/null || true
check="import jax, flax, optax; from seedr1_jax import aot; print('jax', jax.__version__, 'flax', flax.__version__, \
'optax', optax.__version__, jax.devices())"
if compgen -G ".whl/*.whl" >/dev/null; then
  for w in .whl/*.whl; do
    case $w in *flax-*) dest=/tmp/site_flax ;; *) dest=/tmp/site ;; esac
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $dest "$w" || exit 1
  done
  export PYTHONPATH=$PWD:/tmp/site_flax:/tmp/site:${PYTHONPATH:-}
  "$py" -c "$check" || export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH#*/tmp/site:}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
"$py" -c "$check" || exit 1
dsf=--xla_gpu_enable_dynamic_slice_fusion=true
cb=--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL
rc=0
hlo=(--save-hlo "$out/hlo")
for v in "${variants[@]}"; do
  extra=()
  case $v in
    base) flags= ;; dsf) flags=$dsf ;; cb) flags=$cb ;; both) flags="$dsf $cb" ;;
    unroll) flags= extra=(--config.model.decode_unroll=on) ;;
    scan) flags= extra=(--config.model.decode_unroll=off) ;;
    *) echo "unknown variant $v (base, dsf, cb, both, unroll, scan)" >&2; exit 2 ;;
  esac
  echo "== variant $v: XLA_FLAGS=$flags"
  xf=$(echo "$flags ${XLA_FLAGS:-}" | xargs)
  env ${xf:+XLA_FLAGS="$xf"} timeout "${TIMEOUT:-500}" "$py" -m seedr1_jax.cli aot \
    --config "${CONFIG:-configs/grpo_qwen2vl_2b.py}" --validate --validate-json "$out/$v.json" "${hlo[@]}" \
    --programs "${PROGRAMS:-update,logprobs,sampler}" "${extra[@]}" \
    >"$out/$v.log" 2>&1
  r=$?
  [ $r -eq 0 ] || rc=$r
  grep -A30 "^program (calls per step)" "$out/$v.log" || tail -5 "$out/$v.log"
  hlo=()
done
gzip -9f "$out"/hlo/*.txt 2>/dev/null
exit "$rc"
