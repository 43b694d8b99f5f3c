"""The real slurm/degrpo_7b.sh and a submitit sweep on a local one-node SLURM (marker `slurm`).

The 7B recipe is submitted unchanged; sbatch command-line options shrink it to this one CPU
node (they override its #SBATCH lines), the environment picks the toy experiment, one trainer
process and no rollout servers, and the Hydra overrides make the run seconds long.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from local_cluster import LocalCluster, free_port

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
DEGRPO_7B = REPO / "slurm" / "degrpo_7b.sh"
ADAPTTHINK_7B = REPO / "slurm" / "adaptthink_7b.sh"
QUIET = ["logger.tensorboard=false", "logger.progress_bar=false"]
TINY_RL = [
    "stages=[sft,rl]", "sft.max_steps=4", "rl.max_steps=2", "rl.prompts_per_step=4", "rollout.n_samples=2",
    "rollout.max_new_tokens=24", "rl.mini_batches=1", "rl.micro_batch_size=8", "algorithm.kl_coef=0",
    "eval.max_new_tokens=24", "checkpoint.save_every=1", *QUIET,
]
"""experiment=toy_smoke shrunk to seconds: 4 SFT steps, then 2 DeGRPO steps that write summary.json."""


def submit(
    cluster: LocalCluster, tmp_path: Path, overrides: list[str], recipe: Path = DEGRPO_7B, **env: str
) -> tuple[int, Path]:
    """sbatch a real 7B recipe (DeGRPO by default) shrunk to one CPU node; returns the job id and its run folder."""
    run_dir = tmp_path / "run"
    job_env = {
        "EXPERIMENT": "toy_smoke", "ROLLOUT_NODES": "0", "NPROC_PER_NODE": "1", "RUN_DIR": str(run_dir),
        "MEGATHINK_PYTHON": sys.executable, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", **env,
    }
    job_id = cluster.sbatch(
        "--nodes=1", f"--cpus-per-task={cluster.cpus}", "--time=30", f"--output={tmp_path}/job-%j.out",
        f"--chdir={tmp_path}", str(recipe), *overrides, env=job_env,
    )
    return job_id, run_dir


def job_log(tmp_path: Path, job_id: int) -> str:
    path = tmp_path / f"job-{job_id}.out"
    return path.read_text(errors="replace") if path.is_file() else "(no job output)"


@dataclass
class FinishedJob:
    job_id: int
    state: str
    run_dir: Path
    log: str


@pytest.fixture(scope="module")
def degrpo_job(slurm_cluster, tmp_path_factory) -> FinishedJob:
    """The shrunk 7B DeGRPO recipe, run once: SFT then DeGRPO, no rollout servers."""
    tmp_path = tmp_path_factory.mktemp("degrpo")
    job_id, run_dir = submit(slurm_cluster, tmp_path, TINY_RL)
    state = slurm_cluster.wait_done(job_id, timeout=150)
    return FinishedJob(job_id, state, run_dir, job_log(tmp_path, job_id))


def test_degrpo_recipe_trains_on_one_cpu_node(degrpo_job):
    run_dir, log = degrpo_job.run_dir, degrpo_job.log
    assert degrpo_job.state == "COMPLETED", log[-4000:]
    # --nodes was shrunk on the command line; the recipe's own --gpus-per-node=8 still holds (fake GPUs)
    assert "trainer: 1 node(s) x 1 process(es) (8 GPU(s) per node), rendezvous" in log
    assert "rollout node(s): none (in-process engine)" in log
    assert f"training finished; output in {run_dir}" in log
    assert (run_dir / "sft" / "checkpoints" / "step_00000004" / "trainer_state.json").is_file()
    assert (run_dir / "rl" / "checkpoints" / "step_00000002" / "trainer_state.json").is_file()
    rl_steps = [json.loads(line)["step"] for line in (run_dir / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert max(rl_steps) == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["think_ratio"] <= 1.0 and summary["mean_tokens"] > 0


def test_requeued_job_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    # The toy experiment as a command-line override this time (Hydra takes the last experiment=).
    overrides = ["experiment=toy_smoke", "sft.max_steps=120", "checkpoint.save_every=5", "trainer.log_every=20", *QUIET]
    job_id, run_dir = submit(slurm_cluster, tmp_path, overrides, EXPERIMENT="")
    checkpoints = run_dir / "sft" / "checkpoints"
    deadline = time.monotonic() + 90
    while not list(checkpoints.glob("step_*/trainer_state.json")):
        assert time.monotonic() < deadline, f"no checkpoint after 90 s:\n{job_log(tmp_path, job_id)[-3000:]}"
        assert slurm_cluster.job_state(job_id) in ("PENDING", "RUNNING"), job_log(tmp_path, job_id)[-3000:]
        time.sleep(0.1)
    slurm_cluster.run("scontrol", "requeue", str(job_id))
    state = slurm_cluster.wait_done(job_id, timeout=150)
    log = job_log(tmp_path, job_id)
    assert state == "COMPLETED", log[-4000:]
    assert slurm_cluster.job_info(job_id)["Restarts"] == "1"
    first, second = log.split(f"job {job_id} restart 1 on", 1)
    resumed = re.search(r"resumed from \S+/step_(\d+) at step (\d+)", second)
    assert resumed is not None, second[-3000:]
    assert int(resumed.group(2)) >= 5  # not step 0: the second run continued the first
    assert "resumed from" not in first
    assert "SIGTERM (scancel, requeue, preemption or time limit): stopping" in first or "training finished" in first
    if "the trainer checkpointed:" in first:  # SIGTERM mid-stage: it saved the step it was on, and resumed there
        saved = json.loads(first.split("the trainer checkpointed: ", 1)[1].splitlines()[0])
        assert int(resumed.group(2)) == saved["step"]
    state_file = checkpoints / "step_00000120" / "trainer_state.json"
    assert json.loads(state_file.read_text())["step"] == 120


STOP_RUN = ["stages=[sft]", "sft.max_steps=1500", "checkpoint.save_every=100000", "trainer.log_every=1", *QUIET,
            "logger.console=false"]
"""1500 SFT steps of a few ms each: long enough that a signal sent after step 1 lands mid-stage;
no periodic checkpoint, so the only one is the one the signal asked for."""


def _sft_losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "sft" / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


@pytest.mark.parametrize(
    "scancel",
    [["--batch", "--signal=USR1"], ["--signal=TERM"]],
    ids=["usr1-to-the-batch-shell", "term-to-the-steps"],
)
def test_a_stop_signal_checkpoints_requeues_and_resumes(slurm_cluster, tmp_path, scancel):
    """SIGUSR1 to the batch shell (what `#SBATCH --signal=B:USR1@600` sends before the time limit):
    the library passes it to the trainer step; SIGTERM to the steps only: the trainer hears it
    directly. Either way the trainer checkpoints the step it is on and exits, the job requeues
    itself, and the requeued job resumes there and ends with the uninterrupted run's losses."""
    job_id, run_dir = submit(slurm_cluster, tmp_path, STOP_RUN, REQUEUE_MIN_RUNTIME_S="0")
    reference = tmp_path / "reference"  # the same training, one plain process, never interrupted
    ref_log = tmp_path / "reference.log"
    with ref_log.open("w") as sink:
        ref = subprocess.Popen(
            [sys.executable, "-m", "megathink.launch.cli", "train", "experiment=toy_smoke", *STOP_RUN,
             f"hydra.run.dir={reference}"], stdout=sink, stderr=subprocess.STDOUT,
        )
    metrics = run_dir / "sft" / "metrics.jsonl"
    deadline = time.monotonic() + 90
    while not (metrics.is_file() and '"step": 1,' in metrics.read_text()):
        assert time.monotonic() < deadline, f"no SFT step after 90 s:\n{job_log(tmp_path, job_id)[-3000:]}"
        assert slurm_cluster.job_state(job_id) in ("PENDING", "RUNNING"), job_log(tmp_path, job_id)[-3000:]
        time.sleep(0.05)
    slurm_cluster.run("scancel", *scancel, str(job_id))
    state = slurm_cluster.wait_done(job_id, timeout=150)
    log = job_log(tmp_path, job_id)
    assert state == "COMPLETED", log[-4000:]
    assert slurm_cluster.job_info(job_id)["Restarts"] == "1"
    first, second = log.split(f"job {job_id} restart 1 on", 1)
    stopped = re.search(r"the trainer checkpointed and stopped on a signal \(status \d+\): (\{.*\})", first)
    assert stopped is not None, first[-3000:]
    record = json.loads(stopped.group(1))
    assert record["signal"] == ("SIGUSR1" if "--signal=USR1" in scancel else "SIGTERM") and record["stage"] == "sft"
    assert 1 <= record["step"] < 1500 and f"requeueing job {job_id}" in first
    assert re.search(rf"resumed from \S+/sft/checkpoints/step_{record['step']:08d} at step {record['step']}\n", second)
    assert "training finished" in second and not (run_dir / "preempted.json").exists()
    assert ref.wait(timeout=300) == 0, ref_log.read_text()[-3000:]
    assert _sft_losses(run_dir) == _sft_losses(reference)


@pytest.mark.parametrize(
    "engine_env, message",
    [
        ({"ROLLOUT_ENGINE_CMD": "false {model_path} {port}"}, "exited with status 1 before answering /health"),
        (
            {"ROLLOUT_ENGINE_CMD": "{python} -m http.server {port}", "ROLLOUT_HEALTH_TIMEOUT": "4"},
            "did not answer /health within ROLLOUT_HEALTH_TIMEOUT=4s",
        ),
    ],
    ids=["engine-dies", "health-deadline"],
)
def test_a_broken_engine_fails_the_job_fast(slurm_cluster, tmp_path, engine_env, message):
    port = free_port()
    env = {"ROLLOUT_NODES": "1", "ROLLOUT_SHARE_NODES": "1", "ROLLOUT_ENGINES_PER_NODE": "1", "ROLLOUT_MODEL": "unused",
           "ROLLOUT_PORT": str(port), "MEGATHINK_POLL_S": "0.5", **engine_env}
    job_id, run_dir = submit(slurm_cluster, tmp_path, TINY_RL, **env)
    state = slurm_cluster.wait_done(job_id, timeout=60)
    log = job_log(tmp_path, job_id)
    assert state == "FAILED", log[-3000:]
    assert message in log
    assert f"the rollout engines on {slurm_cluster.host} exited" in log or f"http://{slurm_cluster.host}:{port}" in log
    assert "trainer: " not in log  # it never started
    assert not (run_dir / "sft").exists()


def test_submitit_sweep_then_sweep_report(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "megathink.launch.cli", "train", "-m", "hydra/launcher=megathink_slurm",
        "hydra.launcher.gpus_per_node=1", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=60",
        "experiment=toy_smoke", *TINY_RL, "checkpoint.save_every=0", "logger.console=false",
        "algorithm.alpha=0.001,0.1", "reward.gamma=0.5,0.8", f"hydra.sweep.dir={sweep}",
    ]
    env = {**slurm_cluster.env, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    task_logs = sorted((sweep / ".submitit").glob("*_*/*_log.out"))
    assert len(task_logs) == 4  # a real job array: one SLURM task per sweep point
    report = subprocess.run(
        [sys.executable, "-m", "megathink.launch.cli", "sweep-report", str(sweep)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader((sweep / "report" / "sweep_report.csv").open()))
    assert [(r["algorithm.alpha"], r["reward.gamma"]) for r in rows] == [
        ("0.001", "0.5"), ("0.001", "0.8"), ("0.1", "0.5"), ("0.1", "0.8"),
    ]
    assert all(r["think_ratio"] != "" for r in rows)
    assert (sweep / "report" / "sweep_algorithm.alpha.png").is_file()


SERVE_MISSING = importlib.util.find_spec("megathink.launch.serve_command") is None


@pytest.mark.skipif(SERVE_MISSING, reason="`megathink serve` (megathink/launch/serve_command.py) is not in this checkout")
def test_rollout_server_on_the_node(slurm_cluster, degrpo_job, tmp_path):
    """ROLLOUT_NODES=1 on the same node: DeGRPO from the first job's SFT model (as degrpo_7b.sh
    starts from sft_7b.sh's), sampling over HTTP from `megathink serve` started by the recipe."""
    assert degrpo_job.state == "COMPLETED", degrpo_job.log[-3000:]
    model = degrpo_job.run_dir / "sft" / "hf"
    port = free_port()
    overrides = [
        "stages=[rl]", f"model.path={model}", "tokenizer.kind=pretrained", "rl.max_steps=2", "rl.prompts_per_step=4",
        "rollout.n_samples=2", "rollout.max_new_tokens=24", "rl.mini_batches=1", "rl.micro_batch_size=8",
        "algorithm.kl_coef=0", "eval.max_new_tokens=24", *QUIET,
    ]
    env = {"ROLLOUT_NODES": "1", "ROLLOUT_SHARE_NODES": "1", "ROLLOUT_ENGINES_PER_NODE": "1", "ROLLOUT_ENGINE": "megathink",
           "ROLLOUT_PORT": str(port)}
    job_id, run_dir = submit(slurm_cluster, tmp_path, overrides, **env)
    state = slurm_cluster.wait_done(job_id, timeout=150)
    log = job_log(tmp_path, job_id)
    assert state == "COMPLETED", log[-4000:]
    assert "1 rollout engine(s) healthy after" in log and f"http://{slurm_cluster.host}:{port}" in log
    resolved = (run_dir / "rl" / "resolved_config.yaml").read_text()
    assert "engine: sglang" in resolved and f"http://{slurm_cluster.host}:{port}" in resolved
    engine_log = (run_dir / "logs" / f"rollout-{slurm_cluster.host}-{job_id}-0-0.log").read_text()
    assert "update_weights_from_disk" in engine_log  # the trainer pushed its weights to the server
    assert (run_dir / "summary.json").is_file()
    assert (run_dir / "rl" / "checkpoints" / "step_00000002").is_dir()
    assert "stopping 1 running step(s)" in log  # the server was torn down when training ended


def test_adaptthink_recipe_presamples_then_trains(slurm_cluster, degrpo_job, tmp_path):
    """slurm/adaptthink_7b.sh: `megathink presample` writes Rbar_ref into RUN_DIR, then RL reads it."""
    assert degrpo_job.state == "COMPLETED", degrpo_job.log[-3000:]
    overrides = [
        "stages=[rl]", f"model.path={degrpo_job.run_dir / 'sft' / 'hf'}", "tokenizer.kind=pretrained",
        "data.levels=[1,2]", "data.toy_train_size=64", "data.toy_rl_prompts=4", "data.toy_eval_per_level=2",
        "algorithm.presample_k=2", "rl.max_steps=1", "rl.eval_every=0", "rl.prompts_per_step=4", "rollout.n_samples=2",
        "rl.micro_batch_size=8", "eval.max_new_tokens=24", *QUIET,
    ]
    job_id, run_dir = submit(slurm_cluster, tmp_path, overrides, ADAPTTHINK_7B, EXPERIMENT="toy_adaptthink")
    state = slurm_cluster.wait_done(job_id, timeout=150)
    log = job_log(tmp_path, job_id)
    assert state == "COMPLETED", log[-4000:]
    assert log.index("presample (AdaptThink's Rbar_ref) on") < log.index("trainer: 1 node(s)")
    rows = (run_dir / "reference_accuracy.jsonl").read_text().splitlines()
    assert len(rows) == 4  # one Rbar_ref per RL prompt
    resolved = (run_dir / "rl" / "resolved_config.yaml").read_text()
    assert "name: adaptthink" in resolved
    assert (run_dir / "rl" / "checkpoints" / "step_00000001").is_dir()
    assert "nothinking_ratio" in json.loads((run_dir / "summary.json").read_text())
