# shellcheck shell=bash
# The one library behind every slurm/*.sh recipe: sourced, never run. A recipe sets EXPERIMENT
# (and its defaults for ROLLOUT_NODES and PRESAMPLE), sources this file and calls
# `megathink_job_main "$@"`; every argument is a Hydra override passed through to
# `megathink train experiment=$EXPERIMENT ...`, so nothing of hydra_conf/ is repeated here.
#
# What one job does (docs/CLUSTER.md has the walk-through):
#   1. splits the allocation by node list: the first TRAINER_NODES nodes train (torchrun), the
#      last ROLLOUT_NODES nodes serve rollouts: one srun step per node runs serve_node.sh, which
#      starts one engine per ROLLOUT_GPUS_PER_ENGINE GPUs (ports ROLLOUT_PORT, +1, ...);
#      ROLLOUT_NODES=0: no servers, the trainer samples in-process (rollout.engine as configured);
#      before any of them start, `megathink check ... plan.world_size=<trainer GPUs>` validates the
#      run (config, model shape vs layout, tokenizer, data, run folder, memory plan): a run that
#      cannot start ends the job here, in seconds;
#   2. waits until every engine answers GET /health, with a deadline, failing fast (with the
#      tail of its log) when a node's engines exit first;
#   3. AdaptThink (PRESAMPLE=1): runs `megathink presample` once on the first trainer node
#      (single process; resumable, so a requeued job skips what is done);
#   4. runs `torchrun ... -m megathink.launch.cli train experiment=$EXPERIMENT hydra.run.dir=$RUN_DIR
#      logger.run_name=$EXPERIMENT [rollout.engine=sglang rollout.sglang.urls=[...]] "$@"` on the
#      trainer nodes, the rendezvous at the first trainer node (MASTER_ADDR from scontrol) on a port
#      derived from the job id; torchrun forwards SIGTERM and SIGUSR1 to its workers and gives them
#      TRAINER_STOP_TIMEOUT_S to finish;
#   5. watches both: an engine that dies stops the job with its name and log; the trainer's exit
#      status is the job's;
#   6. stops cleanly on signals. SIGUSR1 to this shell (`#SBATCH --signal=B:USR1@600`, ten minutes
#      before the time limit, or `scancel --batch --signal=USR1`) is passed to the trainer step: every
#      rank finishes its step, writes a checkpoint of it and exits (megathink exits 75 and writes
#      RUN_DIR/preempted.json), then the job requeues itself and the requeued job resumes from that
#      checkpoint in the same RUN_DIR (checkpoint.resume=auto). A trainer that stops so on a signal
#      sent to the steps only (`scancel --signal=USR1|TERM <job>`) requeues the job the same way.
#      SIGTERM to the whole job (scancel, preemption, the time limit, `scontrol requeue`) reaches
#      every step from SLURM itself: this shell waits for the trainer to checkpoint and exit (until
#      SLURM's SIGKILL after KillWait), then tears every step down; Ctrl-C tears down at once.
#
# Settings (environment variables; the recipe gives defaults, `VAR=value sbatch ...` overrides):
#   EXPERIMENT              hydra_conf/experiment/ option (set by the recipe); an experiment=...
#                           argument also works (Hydra takes the last one), RUN_DIR keeps this name
#   RUN_DIR                 output folder, stable across requeues and resubmissions
#                           (default: $MEGATHINK_RUNS/$EXPERIMENT; MEGATHINK_RUNS defaults to
#                           runs/ in the submit folder); a second sbatch of the same recipe
#                           continues that run
#   ROLLOUT_NODES           nodes that serve rollouts (0: no servers)
#   TRAINER_NODES           nodes that train (default: the allocation minus ROLLOUT_NODES)
#   ROLLOUT_SHARE_NODES     1: the engines run on the last ROLLOUT_NODES *trainer* nodes
#                           (srun --overlap), for a one-node CPU test or debugging
#   NPROC_PER_NODE          trainer processes per node (default: GPUs per node, else 1)
#   MEGATHINK_PYTHON        the interpreter with megathink installed (default: the checkout's
#                           .venv/bin/python when present, else python3 on PATH)
#   ROLLOUT_ENGINE          sglang (default) | megathink (the CPU stand-in `megathink serve`);
#   ROLLOUT_ENGINE_ARGS     extra engine arguments; ROLLOUT_ENGINE_CMD: the whole command line
#                           (placeholders {python} {model_path} {host} {port} {tp}), see serve_node.sh
#   ROLLOUT_PYTHON          the engines' interpreter (default MEGATHINK_PYTHON; SGLang pins its own torch)
#   ROLLOUT_GPUS_PER_ENGINE GPUs of one engine (its tensor-parallel size; default 1)
#   ROLLOUT_ENGINES_PER_NODE engines per rollout node (default: GPUs per node / ROLLOUT_GPUS_PER_ENGINE,
#                           1 without GPUs)
#   ROLLOUT_MODEL           weights the engines load first (default: the run config's model.path;
#                           the trainer pushes its own weights before the first rollout)
#   ROLLOUT_PORT            port of a node's first engine (default 30000)
#   ROLLOUT_HEALTH_TIMEOUT  seconds the engines may take to come up (default 1800)
#   PRESAMPLE               1: `megathink presample` before training (AdaptThink's Rbar_ref)
#   PRESAMPLE_OVERRIDES     its extra overrides (default: the single-process HF backend)
#   REQUEUE_ON_USR1         1 (default): SIGUSR1 stops the trainer at a checkpoint and requeues the job,
#                           as does a trainer that stopped on a signal sent to the steps (once the
#                           job ran REQUEUE_MIN_RUNTIME_S, default 900, so a short --time cannot
#                           requeue it in a loop); 0 ignores SIGUSR1 and never requeues
#   TRAINER_STOP_TIMEOUT_S  seconds the trainer may take, after SIGUSR1 / SIGTERM, to finish its step and
#                           checkpoint before torchrun kills it (default 540: inside the 600 s warning
#                           of --signal=B:USR1@600; SLURM's SIGKILL after KillWait ends a SIGTERM sooner)
#   MEGATHINK_POLL_S        seconds between liveness checks (default 2)

MT_PREFIX="[megathink-job]"
MT_NODE_PIDS=()   # one srun step (serve_node.sh) per rollout node
MT_NODE_HOSTS=()
MT_NODE_LOGS=()
MT_ENGINE_URLS=()
MT_STEP_PIDS=()   # every srun step this job started, for the teardown
MT_TRAIN_PID=""   # the trainer's srun step while it runs
MT_STOPPING=""    # set once this shell asked the trainer to checkpoint and stop (SIGUSR1)
MT_PREEMPTED_FILE=preempted.json  # megathink.trainer.preemption.PREEMPTED_FILE, in RUN_DIR

mt_log() { echo "$MT_PREFIX $(date '+%F %T') $*"; }

mt_die() {
    echo "$MT_PREFIX error: $*" >&2
    exit 1
}

mt_require_slurm() {
    [[ -n "${SLURM_JOB_ID:-}" ]] || mt_die "not inside a SLURM job (no SLURM_JOB_ID): submit with sbatch, or run inside salloc"
    command -v scontrol >/dev/null || mt_die "scontrol not found on PATH on $(hostname)"
    command -v srun >/dev/null || mt_die "srun not found on PATH on $(hostname)"
}

# The interpreter that has megathink installed (MEGATHINK_PYTHON, else the checkout's venv).
mt_find_python() {
    if [[ -n "${MEGATHINK_PYTHON:-}" ]]; then
        :
    elif [[ -x "${MEGATHINK_REPO:-}/.venv/bin/python" ]]; then
        MEGATHINK_PYTHON="$MEGATHINK_REPO/.venv/bin/python"
    else
        MEGATHINK_PYTHON="$(command -v python3 || true)"
    fi
    [[ -n "$MEGATHINK_PYTHON" ]] || mt_die "no python found: set MEGATHINK_PYTHON to the interpreter that has megathink installed"
    "$MEGATHINK_PYTHON" -c "import megathink" 2>/dev/null \
        || mt_die "$MEGATHINK_PYTHON cannot import megathink: set MEGATHINK_PYTHON, or install it (README: Install by hand)"
    export MEGATHINK_PYTHON
}

# The allocation's nodes, split into MT_TRAINER_HOSTS and MT_ROLLOUT_HOSTS.
mt_split_nodes() {
    local hosts
    mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
    local total=${#hosts[@]}
    local rollout=${ROLLOUT_NODES:-0}
    [[ "$rollout" =~ ^[0-9]+$ ]] || mt_die "ROLLOUT_NODES=$rollout is not a whole number"
    local trainer=${TRAINER_NODES:-}
    if [[ "${ROLLOUT_SHARE_NODES:-0}" == "1" ]]; then
        trainer=${trainer:-$total}
        ((rollout <= trainer)) || mt_die "ROLLOUT_NODES=$rollout with ROLLOUT_SHARE_NODES=1 exceeds the $trainer trainer node(s)"
    else
        trainer=${trainer:-$((total - rollout))}
        ((trainer + rollout <= total)) \
            || mt_die "TRAINER_NODES=$trainer + ROLLOUT_NODES=$rollout > the $total node(s) allocated ($SLURM_JOB_NODELIST); ask for more with --nodes, or set ROLLOUT_SHARE_NODES=1"
    fi
    ((trainer >= 1)) || mt_die "no node left for the trainer: $total node(s) allocated, ROLLOUT_NODES=$rollout; ask for more with --nodes"
    MT_TRAINER_HOSTS=("${hosts[@]:0:trainer}")
    if [[ "${ROLLOUT_SHARE_NODES:-0}" == "1" ]]; then
        MT_ROLLOUT_HOSTS=("${MT_TRAINER_HOSTS[@]:trainer-rollout:rollout}")
    else
        MT_ROLLOUT_HOSTS=("${hosts[@]:trainer:rollout}")
    fi
}

# GPUs SLURM gave this job per node (0 without GPUs).
mt_gpus_per_node() {
    local gpus=${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-0}}
    gpus=${gpus##*:}  # "h100:8" -> 8
    [[ "$gpus" =~ ^[0-9]+$ ]] || gpus=0
    echo "$gpus"
}

# CPUs of a node for one step's single task (srun >= 22.05 no longer inherits --cpus-per-task).
mt_node_cpus() { echo "${SLURM_CPUS_ON_NODE:-1}"; }

# srun's --overlap when engines share the trainer nodes (each step asks for every CPU of a node).
mt_overlap() { [[ "${ROLLOUT_SHARE_NODES:-0}" == "1" ]] && echo "--overlap" || true; }

# The resolved model.path of this run's config (what the engines load before the first sync).
mt_config_model_path() {
    "$MEGATHINK_PYTHON" -m megathink.launch.cli train "experiment=$EXPERIMENT" "$@" --cfg job --resolve --package model \
        | "$MEGATHINK_PYTHON" -c 'import sys, yaml; print((yaml.safe_load(sys.stdin) or {}).get("path") or "")'
}

mt_start_engines() {
    ((${#MT_ROLLOUT_HOSTS[@]} > 0)) || return 0
    local model=${ROLLOUT_MODEL:-}
    if [[ -z "$model" ]]; then
        model=$(mt_config_model_path "$@") || mt_die "could not read model.path from the config (megathink train experiment=$EXPERIMENT ... --cfg job failed; output above)"
    fi
    [[ -n "$model" ]] || mt_die "the engines need weights to load but the run's model.path is null: set ROLLOUT_MODEL or model.path=..."
    local port=${ROLLOUT_PORT:-30000} per=${ROLLOUT_GPUS_PER_ENGINE:-1} gpus engines overlap host log i
    gpus=$(mt_gpus_per_node)
    engines=${ROLLOUT_ENGINES_PER_NODE:-$((gpus > 0 ? gpus / per : 1))}
    ((engines >= 1)) || mt_die "ROLLOUT_GPUS_PER_ENGINE=$per is more than the $gpus GPU(s) of a node"
    mapfile -t overlap < <(mt_overlap)
    mkdir -p "$RUN_DIR/logs"
    for host in "${MT_ROLLOUT_HOSTS[@]}"; do
        log="$RUN_DIR/logs/rollout-$host-$SLURM_JOB_ID-${SLURM_RESTART_COUNT:-0}"
        mt_log "rollout node $host: $engines engine(s) on ports $port.. serving $model (logs: $log*.log)"
        srun --nodes=1 --ntasks=1 --cpus-per-task="$(mt_node_cpus)" --nodelist="$host" "${overlap[@]}" \
            --kill-on-bad-exit=1 --output="$log.log" \
            bash "$MEGATHINK_REPO/slurm/lib/serve_node.sh" "$model" "$port" "$engines" "$per" "$log" &
        MT_NODE_PIDS+=("$!")
        MT_STEP_PIDS+=("$!")
        MT_NODE_HOSTS+=("$host")
        MT_NODE_LOGS+=("$log.log")
        for ((i = 0; i < engines; i++)); do
            MT_ENGINE_URLS+=("http://$host:$((port + i))")
        done
    done
}

mt_node_died() {  # index, when -> dies with the node step's status and its log tail
    local i=$1 status=0
    wait "${MT_NODE_PIDS[$i]}" || status=$?
    echo "$MT_PREFIX last lines of ${MT_NODE_LOGS[$i]}:" >&2
    tail -n 40 "${MT_NODE_LOGS[$i]}" >&2 2>/dev/null || true
    mt_die "the rollout engines on ${MT_NODE_HOSTS[$i]} exited with status $status $2"
}

# Of the given engine URLs, print those whose GET /health does not answer 200 (one process for all).
mt_unhealthy() {
    "$MEGATHINK_PYTHON" - "$@" <<'PY'
import sys
import urllib.request
for url in sys.argv[1:]:
    try:
        urllib.request.urlopen(url + "/health", timeout=5).close()
    except Exception:  # refused, timed out, or an HTTP error status
        print(url)
PY
}

mt_check_nodes() {  # when -> dies when a rollout node's engines have exited
    local i
    for i in "${!MT_NODE_PIDS[@]}"; do
        kill -0 "${MT_NODE_PIDS[$i]}" 2>/dev/null || mt_node_died "$i" "$1"
    done
}

mt_wait_engines() {
    ((${#MT_NODE_PIDS[@]} > 0)) || return 0
    local timeout=${ROLLOUT_HEALTH_TIMEOUT:-1800} start=$SECONDS pending=()
    while :; do
        mt_check_nodes "before answering /health"
        mapfile -t pending < <(mt_unhealthy "${MT_ENGINE_URLS[@]}")
        ((${#pending[@]} == 0)) && break
        ((SECONDS - start < timeout)) \
            || mt_die "${#pending[@]} rollout engine(s) did not answer /health within ROLLOUT_HEALTH_TIMEOUT=${timeout}s: ${pending[*]} (logs: $RUN_DIR/logs/)"
        mt_sleep
    done
    mt_log "${#MT_ENGINE_URLS[@]} rollout engine(s) healthy after $((SECONDS - start)) s: ${MT_ENGINE_URLS[*]}"
}

mt_sleep() { sleep "${MEGATHINK_POLL_S:-2}" & wait $! || true; }

# Hydra overrides that point the trainer at the engines (none without engines).
mt_rollout_overrides() {
    ((${#MT_ENGINE_URLS[@]} > 0)) || return 0
    local IFS=,
    echo "rollout.engine=sglang"
    echo "rollout.sglang.urls=[${MT_ENGINE_URLS[*]}]"
}

mt_presample() {
    [[ "${PRESAMPLE:-0}" == "1" ]] || return 0
    local overrides overlap pid status=0
    read -r -a overrides <<<"${PRESAMPLE_OVERRIDES:-parallel.backend=hf parallel.tp=1 parallel.pp=1 parallel.distributed_optimizer=false}"
    mapfile -t overlap < <(mt_overlap)
    mt_log "presample (AdaptThink's Rbar_ref) on ${MT_TRAINER_HOSTS[0]}"
    srun --nodes=1 --ntasks=1 --cpus-per-task="$(mt_node_cpus)" --nodelist="${MT_TRAINER_HOSTS[0]}" "${overlap[@]}" \
        --kill-on-bad-exit=1 \
        "$MEGATHINK_PYTHON" -m megathink.launch.cli presample "experiment=$EXPERIMENT" "hydra.run.dir=$RUN_DIR" \
        "${MT_ROLLOUT_ARGS[@]}" "${overrides[@]}" "$@" &
    pid=$!
    MT_STEP_PIDS+=("$pid")
    mt_wait_step "$pid" "presample" || status=$?
    ((status == 0)) || mt_die "megathink presample failed with status $status (output above)"
}

# Wait for a step while checking the engines; returns the step's exit status.
mt_wait_step() {
    local pid=$1 what=$2 status=0
    while kill -0 "$pid" 2>/dev/null; do
        mt_check_nodes "while $what was running; stopping the job"
        mt_sleep
    done
    wait "$pid" || status=$?
    return "$status"
}

# `megathink check` on the batch node before any engine or torchrun starts: the whole config,
# the model's config.json against the layout and the job's world size, the tokenizer, the data
# files, the run folder and the memory plan (no weights, no GPU). A failing check ends the job
# here, in seconds, instead of after the engines loaded their weights.
mt_check() {
    local nproc=${NPROC_PER_NODE:-}
    if [[ -z "$nproc" ]]; then
        nproc=$(mt_gpus_per_node)
        ((nproc > 0)) || nproc=1
    fi
    local world=$((${#MT_TRAINER_HOSTS[@]} * nproc))
    mt_log "checking the run (megathink check, world size $world)"
    local first=()
    [[ "${PRESAMPLE:-0}" == 1 ]] && first=(--presample-first)  # mt_presample writes Rbar_ref before RL
    "$MEGATHINK_PYTHON" -m megathink.launch.cli check "${first[@]}" "experiment=$EXPERIMENT" "hydra.run.dir=$RUN_DIR" \
        "plan.world_size=$world" "$@" || mt_die "megathink check failed (output above): fix the run before it takes the allocation"
}

mt_train() {
    local nodes=${#MT_TRAINER_HOSTS[@]} nproc=${NPROC_PER_NODE:-}
    if [[ -z "$nproc" ]]; then
        nproc=$(mt_gpus_per_node)
        ((nproc > 0)) || nproc=1
    fi
    MASTER_ADDR=${MASTER_ADDR:-${MT_TRAINER_HOSTS[0]}}
    MASTER_PORT=${MASTER_PORT:-$((20000 + (SLURM_JOB_ID + 997 * ${SLURM_RESTART_COUNT:-0}) % 20000))}
    export MASTER_ADDR MASTER_PORT
    local hostlist overlap pid status=0
    hostlist=$(IFS=,; echo "${MT_TRAINER_HOSTS[*]}")
    mapfile -t overlap < <(mt_overlap)
    mt_log "trainer: $nodes node(s) x $nproc process(es) ($(mt_gpus_per_node) GPU(s) per node), rendezvous $MASTER_ADDR:$MASTER_PORT, output $RUN_DIR"
    rm -f "$RUN_DIR/$MT_PREEMPTED_FILE"
    # torchrun passes SIGTERM and SIGUSR1 on to every worker and waits for them (by default it
    # would die of SIGUSR1 and kill its workers 30 s after a SIGTERM).
    srun --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1 --cpus-per-task="$(mt_node_cpus)" \
        --nodelist="$hostlist" "${overlap[@]}" --kill-on-bad-exit=1 \
        "$MEGATHINK_PYTHON" -m torch.distributed.run \
        --nnodes="$nodes" --nproc-per-node="$nproc" --max-restarts=0 \
        --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" \
        --rdzv-id="$SLURM_JOB_ID-${SLURM_RESTART_COUNT:-0}" \
        --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout="${TRAINER_STOP_TIMEOUT_S:-540}" \
        -m megathink.launch.cli train "experiment=$EXPERIMENT" "hydra.run.dir=$RUN_DIR" "logger.run_name=$EXPERIMENT" \
        "${MT_ROLLOUT_ARGS[@]}" "$@" &
    pid=$!
    MT_STEP_PIDS+=("$pid")
    MT_TRAIN_PID=$pid
    mt_wait_step "$pid" "the trainer" || status=$?
    MT_TRAIN_PID=""
    if [[ -f "$RUN_DIR/$MT_PREEMPTED_FILE" ]] || { [[ -n "$MT_STOPPING" ]] && ((status != 0)); }; then
        mt_after_stop "$status"
    fi
    if ((status != 0)); then
        mt_die "the trainer (torchrun on ${hostlist}) exited with status $status (output above; run folder $RUN_DIR)"
    fi
    mt_log "training finished; output in $RUN_DIR"
}

# Stop every step this job started, by PID: SIGTERM (srun then cancels its step at once: the
# trainer is waited for before, in mt_on_term), SIGKILL after a grace.
mt_cleanup() {
    local status=$? pid alive=() deadline
    trap - EXIT TERM INT USR1
    for pid in "${MT_STEP_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    if ((${#alive[@]} > 0)); then
        mt_log "stopping ${#alive[@]} running step(s)"
        kill -TERM "${alive[@]}" 2>/dev/null || true
        deadline=$((SECONDS + ${MEGATHINK_STOP_GRACE_S:-30}))
        for pid in "${alive[@]}"; do
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    exit "$status"
}

# Whether the job may requeue itself now (WHAT: what asks for it, for the log).
mt_requeue_allowed() {
    if [[ "${REQUEUE_ON_USR1:-1}" != "1" ]]; then
        mt_log "$1: not requeueing (REQUEUE_ON_USR1=0)"
        return 1
    elif ((SECONDS < ${REQUEUE_MIN_RUNTIME_S:-900})); then
        # A time limit shorter than the signal's lead time would requeue the job forever.
        mt_log "$1 after only ${SECONDS} s (< REQUEUE_MIN_RUNTIME_S=${REQUEUE_MIN_RUNTIME_S:-900}): the time limit is too short for a requeue to make progress; not requeueing"
        return 1
    fi
}

mt_requeue() {
    mt_log "requeueing job $SLURM_JOB_ID; it resumes from its newest checkpoint in $RUN_DIR"
    scontrol requeue "$SLURM_JOB_ID" && return 0
    mt_log "scontrol requeue $SLURM_JOB_ID failed"
    return 1
}

# SIGUSR1 to this shell: a running trainer checkpoints its step and stops first (the trainer step
# hears SIGUSR1 through srun, which passes it to torchrun and every worker); the job requeues
# once it has exited (mt_after_stop). Without a trainer running yet, requeue at once.
mt_on_usr1() {
    if ! mt_requeue_allowed "SIGUSR1"; then
        :
    elif [[ -n "$MT_TRAIN_PID" ]] && kill -0 "$MT_TRAIN_PID" 2>/dev/null; then
        if [[ -z "$MT_STOPPING" ]]; then
            MT_STOPPING=usr1
            mt_log "SIGUSR1 (time limit near): the trainer checkpoints its current step and stops; the job requeues when it has exited"
            kill -USR1 "$MT_TRAIN_PID" 2>/dev/null || true  # srun forwards it (SIGTERM would make srun kill the step)
        fi
    else
        mt_log "SIGUSR1 (time limit near)"
        mt_requeue || mt_log "the job ends at its time limit"
    fi
}

# The trainer exited after a stop signal (STATUS: its exit status). preempted.json says it
# checkpointed the step it was on; requeue (the requeued job resumes), else end with status 75.
mt_after_stop() {
    local status=$1 record="$RUN_DIR/$MT_PREEMPTED_FILE"
    if [[ -f "$record" ]]; then
        mt_log "the trainer checkpointed and stopped on a signal (status $status): $(tr -s ' \n' ' ' <"$record")"
    else
        mt_log "the trainer exited with status $status after SIGUSR1 without reporting a checkpoint; the newest checkpoint in $RUN_DIR is where a resumed run continues"
    fi
    if mt_requeue_allowed "the trainer's stop" && mt_requeue; then
        mt_sleep_until_killed
    fi
    mt_log "not requeued: submit the same recipe again to resume from $RUN_DIR"
    exit 75
}

# After `scontrol requeue` SLURM stops this job (SIGTERM, then SIGKILL): wait for it here.
mt_sleep_until_killed() {
    local deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do mt_sleep; done
}

# SIGTERM to the job (scancel, preemption, the time limit, `scontrol requeue`) reaches every step
# too: the trainer finishes its step, checkpoints and exits; wait for that (SLURM's SIGKILL after
# KillWait bounds it), then the EXIT trap tears the rest down.
mt_on_term() {
    trap '' TERM  # the steps' own SIGTERMs and a repeated scancel must not cut this wait short
    mt_log "SIGTERM (scancel, requeue, preemption or time limit): stopping"
    if [[ -n "$MT_TRAIN_PID" ]] && kill -0 "$MT_TRAIN_PID" 2>/dev/null; then
        local deadline=$((SECONDS + ${TRAINER_STOP_TIMEOUT_S:-540} + 30))
        mt_log "waiting for the trainer to checkpoint its current step and exit"
        while kill -0 "$MT_TRAIN_PID" 2>/dev/null && ((SECONDS < deadline)); do mt_sleep; done
        [[ -f "$RUN_DIR/$MT_PREEMPTED_FILE" ]] && mt_log "the trainer checkpointed: $(tr -s ' \n' ' ' <"$RUN_DIR/$MT_PREEMPTED_FILE")"
    fi
    exit 143
}

megathink_job_main() {
    : "${EXPERIMENT:?the recipe must set EXPERIMENT (a hydra_conf/experiment/ option)}"
    mt_require_slurm
    trap mt_cleanup EXIT
    trap mt_on_term TERM
    trap 'mt_log "interrupted"; exit 130' INT
    trap mt_on_usr1 USR1
    mt_find_python
    RUN_DIR=$(realpath -m "${RUN_DIR:-${MEGATHINK_RUNS:-${SLURM_SUBMIT_DIR:-$PWD}/runs}/$EXPERIMENT}")
    export RUN_DIR
    mkdir -p "$RUN_DIR"
    mt_log "job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0} on $SLURM_JOB_NODELIST: experiment=$EXPERIMENT, RUN_DIR=$RUN_DIR"
    mt_split_nodes
    mt_log "trainer node(s): ${MT_TRAINER_HOSTS[*]}; rollout node(s): ${MT_ROLLOUT_HOSTS[*]:-none (in-process engine)}"
    mt_check "$@"
    mt_start_engines "$@"
    mt_wait_engines
    mapfile -t MT_ROLLOUT_ARGS < <(mt_rollout_overrides)
    mt_presample "$@"
    mt_train "$@"
}
