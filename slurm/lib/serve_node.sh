#!/usr/bin/env bash
# One rollout node's engines, run by slurm/lib/megathink_job.sh as `srun ... serve_node.sh`:
#
#   serve_node.sh MODEL FIRST_PORT ENGINES GPUS_PER_ENGINE LOG_PREFIX
#
# starts ENGINES engines serving MODEL, engine i on port FIRST_PORT + i with the i-th slice of
# GPUS_PER_ENGINE of this step's CUDA_VISIBLE_DEVICES (none without GPUs), its output in
# LOG_PREFIX-<i>.log. megathink's SGLang client spreads its calls over all of them. The script
# lives exactly as long as every engine: when one exits it prints that engine's log tail, stops
# the others and exits non-zero, so the job sees this node's step end and fails fast; SIGTERM
# (the job's teardown) stops them all; SIGUSR1 is ignored (it is meant for the trainer).
#
# The engine command (environment, as in megathink_job.sh):
#   ROLLOUT_ENGINE       sglang (default): python -m sglang.launch_server ... --tp-size <GPUS_PER_ENGINE>
#                        --skip-tokenizer-init (megathink sends and reads token ids);
#                        megathink: `megathink serve`, the CPU stand-in speaking the same API
#   ROLLOUT_ENGINE_ARGS  extra arguments appended to that command
#   ROLLOUT_ENGINE_CMD   the whole command instead; placeholders {python} {model_path} {host} {port} {tp}
#   ROLLOUT_PYTHON       the engines' interpreter ({python}; SGLang pins its own torch, so it
#                        usually lives in a venv of its own); default MEGATHINK_PYTHON
set -euo pipefail

sn_say() { echo "[serve-node $(hostname -s)] $*"; }

# engine command for one port: PORT MODEL GPUS_PER_ENGINE
sn_engine_command() {
    local port=$1 model=$2 tp=$3 cmd
    if [[ -n "${ROLLOUT_ENGINE_CMD:-}" ]]; then
        cmd=$ROLLOUT_ENGINE_CMD
    else
        case "${ROLLOUT_ENGINE:-sglang}" in
            sglang)
                cmd="{python} -m sglang.launch_server --model-path {model_path} --host {host} --port {port} --tp-size {tp} --skip-tokenizer-init"
                ;;
            megathink)
                cmd="{python} -m megathink.launch.cli serve --model-path {model_path} --host {host} --port {port} --skip-tokenizer-init"
                ;;
            *)
                echo "[serve-node] error: ROLLOUT_ENGINE=${ROLLOUT_ENGINE} is not one of: sglang, megathink (or give ROLLOUT_ENGINE_CMD)" >&2
                return 2
                ;;
        esac
        cmd="$cmd ${ROLLOUT_ENGINE_ARGS:-}"
    fi
    cmd=${cmd//\{python\}/${ROLLOUT_PYTHON:-${MEGATHINK_PYTHON:-python3}}}
    cmd=${cmd//\{model_path\}/$model}
    cmd=${cmd//\{host\}/0.0.0.0}
    cmd=${cmd//\{port\}/$port}
    cmd=${cmd//\{tp\}/$tp}
    echo "$cmd"
}

# GPU ids of engine INDEX: the INDEX-th slice of PER ids of this step's CUDA_VISIBLE_DEVICES ('' without GPUs).
sn_engine_gpus() {
    local index=$1 per=$2 gpus=()
    [[ -n "${CUDA_VISIBLE_DEVICES:-}" && "$per" -gt 0 ]] || return 0
    IFS=, read -r -a gpus <<<"$CUDA_VISIBLE_DEVICES"
    ((index * per + per <= ${#gpus[@]})) || {
        echo "[serve-node] error: engine $index needs GPUs $((index * per))..$((index * per + per - 1)) but the step has ${#gpus[@]} ($CUDA_VISIBLE_DEVICES)" >&2
        return 2
    }
    local IFS=,
    echo "${gpus[*]:index*per:per}"
}

sn_main() {
    (($# == 5)) || { echo "usage: serve_node.sh MODEL FIRST_PORT ENGINES GPUS_PER_ENGINE LOG_PREFIX" >&2; exit 2; }
    local model=$1 first_port=$2 engines=$3 per=$4 log_prefix=$5 i cmd gpus log
    local pids=() logs=()
    trap 'sn_say "SIGTERM: stopping ${#pids[@]} engine(s)"; kill -TERM "${pids[@]}" 2>/dev/null; wait; exit 143' TERM INT
    # SIGUSR1 asks the trainer to checkpoint and stop (`scancel --signal=USR1 <job>` reaches every
    # step): this script and the engines, which inherit the ignored disposition, keep serving.
    trap '' USR1
    for ((i = 0; i < engines; i++)); do
        cmd=$(sn_engine_command "$((first_port + i))" "$model" "$per")
        gpus=$(sn_engine_gpus "$i" "$per")
        log="$log_prefix-$i.log"
        sn_say "engine $i on port $((first_port + i))${gpus:+, GPUs $gpus}: $cmd (log: $log)"
        # shellcheck disable=SC2086  # the command is split into words on purpose
        if [[ -n "$gpus" ]]; then
            CUDA_VISIBLE_DEVICES=$gpus $cmd >"$log" 2>&1 &
        else
            $cmd >"$log" 2>&1 &
        fi
        pids+=("$!")
        logs+=("$log")
    done
    local status=0
    wait -n || status=$?
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            sn_say "engine $i (port $((first_port + i))) exited with status $status; last lines of ${logs[$i]}:"
            tail -n 30 "${logs[$i]}" || true
            break
        fi
    done
    sn_say "stopping the other engine(s) of this node"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait || true
    exit $((status == 0 ? 1 : status))  # an engine never exits on its own: even status 0 is a failure
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    sn_main "$@"
fi
