#!/usr/bin/env bash
# launch_tpu.sh: run seedr1-jax on a Cloud TPU VM slice (single host or pod) with gcloud.
#
#   ./launch_tpu.sh create --zone us-east5-a --accelerator-type v5p-64 --spot
#   ./launch_tpu.sh setup  --zone us-east5-a
#   ./launch_tpu.sh run    --zone us-east5-a --workdir gs://BUCKET/runs/grpo7b -- --config.data.tfrecord_dir=...
#   ./launch_tpu.sh logs   --zone us-east5-a --follow
#
# Every setting is a flag or an environment variable (flags win); `--help` lists them with their defaults.
# `--dry-run` prints each command, one per line, shell-quoted exactly as it would run, and runs nothing.
set -euo pipefail

PROG=$(basename "$0")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

DEFAULT_NAME=seedr1
DEFAULT_ACCELERATOR=v5p-64
DEFAULT_CONFIG=configs/grpo_qwen2vl_7b.py
DEFAULT_BRANCH=main
DEFAULT_REMOTE_DIR=seedr1-jax
DEFAULT_PYTHON=python3.11
DEFAULT_EXTRAS=tpu
LOG_FILE=logs/train.log # relative to the remote checkout
PID_FILE=logs/train.pid
SRC_TARBALL=seedr1-jax-src.tar.gz

usage() {
  cat <<EOF
Usage: $PROG COMMAND [OPTIONS] [-- EXTRA...]

Runs seedr1-jax on a Cloud TPU VM slice through \`gcloud compute tpus tpu-vm\`.

Commands:
  create   create the TPU VM slice (spot, reserved or on-demand)
  setup    install the project on every worker: copy this checkout (or git-clone --repo-url),
           create a venv, pip install -e ".[tpu]"
  run      start \`seedr1 train --config CONFIG --workdir WORKDIR EXTRA...\` on every worker in the
           background (nohup, log in <remote-dir>/$LOG_FILE); rerun the same command after a
           preemption or crash and training resumes from the last checkpoint in WORKDIR
  stop     stop the training process on every worker
  exec     run EXTRA (e.g. \`seedr1 eval ...\`) in the checkout with its venv on --worker (default all),
           in the foreground
  status   the slice's state, and whether training runs on each worker (last log line)
  logs     tail the training log of one worker (--worker, default 0; --follow to keep following)
  delete   delete the slice

Options (flag / environment variable / default):
  --name NAME               TPU_NAME          $DEFAULT_NAME
  --zone ZONE               ZONE              (required), e.g. us-east5-a (v5p), us-central2-b (v4)
  --project PROJECT         PROJECT           (gcloud's configured project)
  --accelerator-type TYPE   ACCELERATOR_TYPE  $DEFAULT_ACCELERATOR (e.g. v4-64, v5litepod-16, v6e-8)
  --runtime-version VER     RUNTIME_VERSION   chosen from the accelerator type: v5p-* v2-alpha-tpuv5,
                                              v5litepod-* v2-alpha-tpuv5-lite, v6e-* v2-alpha-tpuv6e,
                                              v2/v3/v4-* tpu-ubuntu2204-base
  --spot                    SPOT=1            spot (preemptible) capacity
  --reserved                RESERVED=1        reserved capacity
  --on-demand                                 neither (default; overrides SPOT/RESERVED)
  --repo-url URL            REPO_URL          (empty: copy this checkout to the workers)
  --branch BRANCH           BRANCH            $DEFAULT_BRANCH (with --repo-url)
  --remote-dir DIR          REMOTE_DIR        $DEFAULT_REMOTE_DIR (relative to the worker's home)
  --python PYTHON           REMOTE_PYTHON     $DEFAULT_PYTHON (installed with apt if missing)
  --extras EXTRAS           EXTRAS            $DEFAULT_EXTRAS (pip extras of the project)
  --config CONFIG           CONFIG            $DEFAULT_CONFIG
  --workdir DIR             WORKDIR           (required for run; gs://... on a multi-host slice)
  --worker N|all            WORKER            0 for logs, all for exec
  --lines N                 LOG_LINES         100 (logs)
  --follow                                    keep following the log (logs)
  --dry-run                 DRY_RUN=1         print the commands instead of running them
  -h, --help                                  this help

Everything after \`--\` goes to seedr1 (run) or is the command to execute (exec), e.g.
  $PROG run --workdir gs://BUCKET/runs/grpo7b -- --config.model.init=gs://BUCKET/ckpt/qwen2vl7b
EOF
}

die() {
  echo "$PROG: error: $*" >&2
  exit 2
}

# Quotes one word like Python's shlex.quote: bare if it only holds safe characters, else in single quotes.
quote() {
  local s=$1 safe='^[A-Za-z0-9_@%+=:,./-]+$'
  if [[ $s =~ $safe ]]; then
    printf '%s' "$s"
  else
    printf "'%s'" "${s//\'/\'\"\'\"\'}"
  fi
}

# Quotes every argument and joins them with spaces.
join_quoted() {
  local out="" a
  for a in "$@"; do
    out+="${out:+ }$(quote "$a")"
  done
  printf '%s' "$out"
}

# Runs a command, or prints it (one line, quoted) with --dry-run.
run_cmd() {
  if [[ $DRY_RUN == 1 ]]; then
    join_quoted "$@"
    echo
  else
    "$@"
  fi
}

# ---- settings: environment first, flags override ----------------------------------------------------------------
NAME=${TPU_NAME:-$DEFAULT_NAME}
ZONE=${ZONE:-}
PROJECT=${PROJECT:-}
ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-$DEFAULT_ACCELERATOR}
RUNTIME_VERSION=${RUNTIME_VERSION:-}
REPO_URL=${REPO_URL:-}
BRANCH=${BRANCH:-$DEFAULT_BRANCH}
REMOTE_DIR=${REMOTE_DIR:-$DEFAULT_REMOTE_DIR}
REMOTE_PYTHON=${REMOTE_PYTHON:-$DEFAULT_PYTHON}
EXTRAS=${EXTRAS:-$DEFAULT_EXTRAS}
CONFIG=${CONFIG:-$DEFAULT_CONFIG}
WORKDIR=${WORKDIR:-}
WORKER=${WORKER:-}
LOG_LINES=${LOG_LINES:-100}
FOLLOW=0
DRY_RUN=${DRY_RUN:-0}
[[ $DRY_RUN == 1 || $DRY_RUN == true ]] && DRY_RUN=1 || DRY_RUN=0

is_true() { [[ ${1:-} == 1 || ${1:-} == true || ${1:-} == yes ]]; }
PROVISIONING=on-demand
if is_true "${SPOT:-}" && is_true "${RESERVED:-}"; then
  die "SPOT and RESERVED are both set: choose one (or pass --spot, --reserved or --on-demand)"
fi
is_true "${SPOT:-}" && PROVISIONING=spot
is_true "${RESERVED:-}" && PROVISIONING=reserved

CMD=""
EXTRA=()
need_value() { [[ $# -ge 2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  arg=$1
  if [[ $arg == --*=* ]]; then # --flag=value: split into --flag value
    set -- "${arg%%=*}" "${arg#*=}" "${@:2}"
    arg=$1
    case $arg in
      --dry-run | --spot | --reserved | --on-demand | --follow | --help) die "$arg takes no value" ;;
    esac
  fi
  case $arg in
    -h | --help)
      usage
      exit 0
      ;;
    --dry-run) DRY_RUN=1 ;;
    --spot) PROVISIONING=spot ;;
    --reserved) PROVISIONING=reserved ;;
    --on-demand) PROVISIONING=on-demand ;;
    --follow) FOLLOW=1 ;;
    --name | --zone | --project | --accelerator-type | --runtime-version | --repo-url | --branch | --remote-dir | \
      --python | --extras | --config | --workdir | --worker | --lines)
      need_value "$@"
      case $arg in
        --name) NAME=$2 ;;
        --zone) ZONE=$2 ;;
        --project) PROJECT=$2 ;;
        --accelerator-type) ACCELERATOR_TYPE=$2 ;;
        --runtime-version) RUNTIME_VERSION=$2 ;;
        --repo-url) REPO_URL=$2 ;;
        --branch) BRANCH=$2 ;;
        --remote-dir) REMOTE_DIR=$2 ;;
        --python) REMOTE_PYTHON=$2 ;;
        --extras) EXTRAS=$2 ;;
        --config) CONFIG=$2 ;;
        --workdir) WORKDIR=$2 ;;
        --worker) WORKER=$2 ;;
        --lines) LOG_LINES=$2 ;;
      esac
      shift
      ;;
    --)
      shift
      EXTRA=("$@")
      break
      ;;
    -*) die "unknown option $arg (see $PROG --help)" ;;
    *)
      [[ -z $CMD ]] || die "unexpected argument $arg (extra seedr1 arguments go after --)"
      CMD=$arg
      ;;
  esac
  shift
done

[[ -n $CMD ]] || {
  usage >&2
  exit 2
}

require() { # require VALUE FLAG ENV WHAT
  [[ -n $1 ]] || die "$4: set $2 or the $3 environment variable"
}

default_runtime_version() {
  case $ACCELERATOR_TYPE in
    v5p-*) echo v2-alpha-tpuv5 ;;
    v5litepod-* | v5e-*) echo v2-alpha-tpuv5-lite ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    v2-* | v3-* | v4-*) echo tpu-ubuntu2204-base ;;
    *) die "no default runtime version for --accelerator-type $ACCELERATOR_TYPE: set --runtime-version or RUNTIME_VERSION" ;;
  esac
}

# More than 8 (v2-v5p: TensorCores, v5e/v6e: chips) means several hosts: v5p-8, v4-8, v5litepod-8, v6e-8 are one host.
is_multi_host() {
  local n=${ACCELERATOR_TYPE##*-}
  [[ $n =~ ^[0-9]+$ ]] || die "cannot read the size of --accelerator-type $ACCELERATOR_TYPE (e.g. v5p-64)"
  ((n > 8))
}

# gcloud compute tpus tpu-vm SUBCOMMAND POSITIONAL... --zone=... [--project=...] ARGS...  (POSITIONAL: NAME, or
# SRC NAME:DEST for scp). Usage: tpu_vm SUBCOMMAND NPOSITIONAL POSITIONAL... ARGS...
tpu_vm() {
  local sub=$1 npos=$2
  shift 2
  local cmd=(gcloud compute tpus tpu-vm "$sub" "${@:1:npos}" "--zone=$ZONE")
  shift "$npos"
  [[ -z $PROJECT ]] || cmd+=("--project=$PROJECT")
  run_cmd "${cmd[@]}" "$@"
}

# Runs a shell command line on workers: ssh WORKER REMOTE_COMMAND
ssh_workers() {
  tpu_vm ssh 1 "$NAME" "--worker=$1" "--command=$2"
}

RUNNING_TEST="[ -f $PID_FILE ] && kill -0 \"\$(cat $PID_FILE)\" 2>/dev/null"

cmd_create() {
  local version=$RUNTIME_VERSION
  [[ -n $version ]] || version=$(default_runtime_version)
  local args=("--accelerator-type=$ACCELERATOR_TYPE" "--version=$version")
  case $PROVISIONING in
    spot) args+=(--spot) ;;
    reserved) args+=(--reserved) ;;
  esac
  tpu_vm create 1 "$NAME" "${args[@]}"
}

cmd_setup() {
  local dir py fetch install
  dir=$(quote "$REMOTE_DIR")
  py=$(quote "$REMOTE_PYTHON")
  local ensure_python="command -v $py >/dev/null || { sudo apt-get update -qq && sudo apt-get install -y -qq $py $py-venv; }"
  if [[ -n $REPO_URL ]]; then
    local br url
    br=$(quote "$BRANCH")
    url=$(quote "$REPO_URL")
    fetch="if [ -d $dir/.git ]; then git -C $dir fetch origin $br && git -C $dir checkout -B $br FETCH_HEAD; else git clone --branch $br $url $dir; fi"
  else
    local tarball="${TMPDIR:-/tmp}/$SRC_TARBALL"
    run_cmd tar -czf "$tarball" -C "$SCRIPT_DIR" --exclude=./.venv --exclude=./.git --exclude=./workdir \
      --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache --exclude='*.egg-info' .
    tpu_vm scp 2 "$tarball" "$NAME:$SRC_TARBALL" --worker=all
    fetch="mkdir -p $dir && tar -xzf $SRC_TARBALL -C $dir && rm -f $SRC_TARBALL"
  fi
  install="cd $dir && { [ -x .venv/bin/python ] || $py -m venv .venv; } && .venv/bin/python -m pip install -q --upgrade pip"
  install+=" && .venv/bin/python -m pip install -q -e $(quote ".[$EXTRAS]")"
  install+=" && .venv/bin/seedr1 --help >/dev/null && echo \"seedr1 installed on \$(hostname)\""
  ssh_workers all "$ensure_python && $fetch && $install"
}

cmd_run() {
  require "$WORKDIR" --workdir WORKDIR "run needs a workdir for checkpoints and logs"
  if is_multi_host; then
    [[ $WORKDIR == gs://* ]] || die "run on $ACCELERATOR_TYPE (several hosts) needs a gs:// workdir that every host" \
      "shares: set --workdir or the WORKDIR environment variable to gs://BUCKET/PATH (got $WORKDIR)"
  elif [[ $WORKDIR != gs://* ]]; then
    echo "$PROG: warning: workdir $WORKDIR is on the TPU VM's disk; it is lost if the VM is preempted or deleted" >&2
  fi
  local train
  train=$(join_quoted nohup .venv/bin/seedr1 train --config "$CONFIG" --workdir "$WORKDIR" ${EXTRA[@]+"${EXTRA[@]}"})
  local dir
  dir=$(quote "$REMOTE_DIR")
  ssh_workers all "cd $dir && mkdir -p logs && if $RUNNING_TEST; then echo \"\$(hostname): already running (pid \$(cat $PID_FILE)); use stop first\" >&2; exit 1; fi && { $train >> $LOG_FILE 2>&1 < /dev/null & echo \$! > $PID_FILE; } && echo \"\$(hostname): started, log in $REMOTE_DIR/$LOG_FILE\""
}

cmd_stop() {
  ssh_workers all "cd $(quote "$REMOTE_DIR") && if $RUNNING_TEST; then kill \"\$(cat $PID_FILE)\" && echo \"\$(hostname): stopped\"; else echo \"\$(hostname): not running\"; fi; rm -f $PID_FILE"
}

cmd_exec() {
  [[ ${#EXTRA[@]} -gt 0 ]] || die "exec needs a command after --, e.g. $PROG exec -- seedr1 eval --config ... --split L1"
  ssh_workers "${WORKER:-all}" "cd $(quote "$REMOTE_DIR") && . .venv/bin/activate && $(join_quoted "${EXTRA[@]}")"
}

cmd_status() {
  tpu_vm describe 1 "$NAME" '--format=value(state,health,acceleratorType)'
  ssh_workers all "cd $(quote "$REMOTE_DIR") 2>/dev/null && if $RUNNING_TEST; then echo \"\$(hostname): running\"; else echo \"\$(hostname): not running\"; fi; tail -n 1 $LOG_FILE 2>/dev/null || true" ||
    echo "$PROG: the workers did not answer (preempted or not set up?)" >&2
}

cmd_logs() {
  [[ $LOG_LINES =~ ^[0-9]+$ ]] || die "--lines/LOG_LINES must be a number (got $LOG_LINES)"
  local tail_cmd=(tail -n "$LOG_LINES")
  [[ $FOLLOW == 0 ]] || tail_cmd+=(-F)
  ssh_workers "${WORKER:-0}" "$(join_quoted "${tail_cmd[@]}" "$REMOTE_DIR/$LOG_FILE")"
}

cmd_delete() {
  tpu_vm delete 1 "$NAME" --quiet
}

case $CMD in
  create | setup | run | stop | exec | status | logs | delete) ;;
  *) die "unknown command $CMD: use create, setup, run, stop, exec, status, logs or delete (see $PROG --help)" ;;
esac
require "$NAME" --name TPU_NAME "the TPU VM name is empty"
require "$ZONE" --zone ZONE "$CMD needs the TPU zone"
if [[ $CMD != run && $CMD != exec && ${#EXTRA[@]} -gt 0 ]]; then
  die "arguments after -- are only for run and exec"
fi
"cmd_$CMD"
