"""slurm/lib/megathink_job.sh and the recipes, piece by piece, without a cluster (a fake scontrol)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from megathink.launch.schema import register_schema, to_run_config

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "slurm" / "lib" / "megathink_job.sh"
SERVE_NODE = REPO / "slurm" / "lib" / "serve_node.sh"
RECIPES = sorted((REPO / "slurm").glob("*.sh"))
FAKE_SCONTROL = '#!/bin/bash\n[[ "$1 $2" == "show hostnames" ]] && printf "%s\\n" $FAKE_HOSTS && exit 0\nexit 1\n'


@pytest.fixture
def fake_bin(tmp_path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "scontrol").write_text(FAKE_SCONTROL)
    (folder / "scontrol").chmod(0o755)
    return folder


def run_lib(snippet: str, fake_bin: Path, **env: str) -> subprocess.CompletedProcess:
    """`snippet` in bash after sourcing the library, with the fake scontrol first on PATH."""
    full_env = {
        "PATH": f"{fake_bin}:{os.environ['PATH']}", "MEGATHINK_PYTHON": sys.executable, "MEGATHINK_REPO": str(REPO),
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "n[1-4]", **env,
    }
    script = f"set -euo pipefail\nsource {LIB}\n{snippet}\n"
    return subprocess.run(["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=60)


SHOW_SPLIT = 'mt_split_nodes; echo "trainer=${MT_TRAINER_HOSTS[*]}"; echo "rollout=${MT_ROLLOUT_HOSTS[*]:-}"'


@pytest.mark.parametrize(
    "env, trainer, rollout",
    [
        ({"ROLLOUT_NODES": "2"}, "n1 n2", "n3 n4"),
        ({"ROLLOUT_NODES": "0"}, "n1 n2 n3 n4", ""),
        ({"ROLLOUT_NODES": "1", "TRAINER_NODES": "1"}, "n1", "n2"),
        ({"ROLLOUT_NODES": "1", "ROLLOUT_SHARE_NODES": "1", "FAKE_HOSTS": "vm"}, "vm", "vm"),
    ],
)
def test_node_split(fake_bin, env, trainer, rollout):
    result = run_lib(SHOW_SPLIT, fake_bin, FAKE_HOSTS=env.pop("FAKE_HOSTS", "n1 n2 n3 n4"), **env)
    assert result.returncode == 0, result.stderr
    assert f"trainer={trainer}\nrollout={rollout}\n" == result.stdout


@pytest.mark.parametrize(
    "env, message",
    [
        ({"ROLLOUT_NODES": "2", "TRAINER_NODES": "3"}, "TRAINER_NODES=3 + ROLLOUT_NODES=2 > the 4 node(s) allocated"),
        ({"ROLLOUT_NODES": "4"}, "no node left for the trainer: 4 node(s) allocated, ROLLOUT_NODES=4; ask for more"),
        ({"ROLLOUT_NODES": "two"}, "ROLLOUT_NODES=two is not a whole number"),
    ],
)
def test_node_split_errors_name_the_setting(fake_bin, env, message):
    result = run_lib(SHOW_SPLIT, fake_bin, FAKE_HOSTS="n1 n2 n3 n4", **env)
    assert result.returncode == 1
    assert message in result.stderr and "[megathink-job] error:" in result.stderr


def run_node(snippet: str, **env: str) -> subprocess.CompletedProcess:
    """`snippet` in bash after sourcing serve_node.sh (its functions; sourcing runs nothing)."""
    full_env = {"PATH": os.environ["PATH"], "MEGATHINK_PYTHON": sys.executable, **env}
    script = f"set -euo pipefail\nsource {SERVE_NODE}\n{snippet}\n"
    return subprocess.run(["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=60)


def test_engine_commands():
    snippet = "sn_engine_command 30001 /models/m 2"
    sglang = run_node(snippet).stdout.split()
    assert sglang == [sys.executable, "-m", "sglang.launch_server", "--model-path", "/models/m", "--host", "0.0.0.0",
                      "--port", "30001", "--tp-size", "2", "--skip-tokenizer-init"]
    serve = run_node(snippet, ROLLOUT_ENGINE="megathink", ROLLOUT_ENGINE_ARGS="--device cuda").stdout.split()
    assert serve == [sys.executable, "-m", "megathink.launch.cli", "serve", "--model-path", "/models/m",
                     "--host", "0.0.0.0", "--port", "30001", "--skip-tokenizer-init", "--device", "cuda"]
    custom = run_node(snippet, ROLLOUT_ENGINE_CMD="env A=1 {python} srv {model_path} :{port} tp{tp}").stdout.strip()
    assert custom == f"env A=1 {sys.executable} srv /models/m :30001 tp2"
    bad = run_node("sn_engine_command 1 m 1", ROLLOUT_ENGINE="vllm")
    assert bad.returncode == 2 and "ROLLOUT_ENGINE=vllm is not one of: sglang, megathink" in bad.stderr


def test_each_engine_gets_its_slice_of_the_gpus():
    assert run_node("sn_engine_gpus 1 2", CUDA_VISIBLE_DEVICES="4,5,6,7").stdout.strip() == "6,7"
    assert run_node("sn_engine_gpus 0 1", CUDA_VISIBLE_DEVICES="3").stdout.strip() == "3"
    assert run_node("sn_engine_gpus 0 1").stdout.strip() == ""  # no GPUs: the engines run on CPU
    too_many = run_node("sn_engine_gpus 2 2", CUDA_VISIBLE_DEVICES="4,5,6,7")
    assert too_many.returncode == 2 and "engine 2 needs GPUs 4..5 but the step has 4" in too_many.stderr


def test_serve_node_ends_when_one_engine_dies(tmp_path):
    """Two engines (plain HTTP servers) on free ports; killing one ends the node script, which stops the other."""
    port = _free_port_pair()
    env = {**os.environ, "MEGATHINK_PYTHON": sys.executable, "ROLLOUT_ENGINE_CMD": "{python} -m http.server {port}"}
    node = subprocess.Popen(
        ["bash", str(SERVE_NODE), "model", str(port), "2", "0", str(tmp_path / "engine")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not all(_answers(port + i) for i in range(2)):
            assert node.poll() is None, node.stdout.read()
            assert time.monotonic() < deadline, "the two engines did not listen within 30 s"
            time.sleep(0.2)
        victim = _listener_pid(port + 1)
        os.kill(victim, signal.SIGKILL)
        out, _ = node.communicate(timeout=30)
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode != 0
    assert f"engine 1 (port {port + 1}) exited with status" in out
    assert "stopping the other engine(s) of this node" in out
    assert not _answers(port)  # the surviving engine was stopped too


def _free_port_pair() -> int:
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port < 65000 and not _answers(port + 1):
            return port


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _listener_pid(port: int) -> int:
    """The PID of the http.server listening on `port` (its command line names the port)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"http.server" in argv and str(port).encode() in argv:
                return int(proc.name)
    raise AssertionError(f"no http.server process for port {port}")


def test_gpus_per_node_reads_typed_counts(fake_bin):
    assert run_lib("mt_gpus_per_node", fake_bin, SLURM_GPUS_ON_NODE="h100:8").stdout.strip() == "8"
    assert run_lib("mt_gpus_per_node", fake_bin).stdout.strip() == "0"


def test_rollout_overrides_compose_into_the_run_config(fake_bin):
    snippet = 'MT_ENGINE_URLS=(http://n3:30000 http://n4:30000); mt_rollout_overrides'
    overrides = run_lib(snippet, fake_bin).stdout.split("\n")[:2]
    assert overrides == ["rollout.engine=sglang", "rollout.sglang.urls=[http://n3:30000,http://n4:30000]"]
    assert run_lib("mt_rollout_overrides", fake_bin).stdout == ""  # no engines, no overrides
    GlobalHydra.instance().clear()
    register_schema()
    try:
        with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
            cfg = to_run_config(compose("train", ["output_dir=out", "experiment=toy_smoke", *overrides]))
    finally:
        GlobalHydra.instance().clear()
    assert cfg.rollout.engine == "sglang"
    assert cfg.rollout.sglang.urls == ["http://n3:30000", "http://n4:30000"]


def test_model_path_comes_from_the_config_and_its_env_paths(fake_bin, tmp_path):
    runs = tmp_path / "runs"
    result = run_lib('mt_config_model_path', fake_bin, EXPERIMENT="thinkless_degrpo_7b", MEGATHINK_RUNS=str(runs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{runs}/thinkless_sft_7b/sft/hf"
    toy = run_lib('mt_config_model_path model.path=/m/x tokenizer.kind=pretrained', fake_bin, EXPERIMENT="toy_smoke")
    assert toy.stdout.strip() == "/m/x"


def test_not_in_a_job_is_refused(fake_bin):
    result = run_lib("unset SLURM_JOB_ID; EXPERIMENT=x megathink_job_main", fake_bin)
    assert result.returncode == 1
    assert "not inside a SLURM job (no SLURM_JOB_ID)" in result.stderr


def test_recipes_share_the_library_and_name_real_experiments():
    assert {p.name for p in RECIPES} == {
        "sft_1.5b.sh", "sft_7b.sh", "degrpo_1.5b.sh", "degrpo_7b.sh", "adaptthink_1.5b.sh", "adaptthink_7b.sh",
        "degrpo_14b.sh", "sft_32b.sh", "degrpo_32b.sh",
    }
    experiments = {p.stem for p in (REPO / "hydra_conf" / "experiment").glob("*.yaml")}
    for recipe in RECIPES:
        text = recipe.read_text()
        assert subprocess.run(["bash", "-n", str(recipe)]).returncode == 0
        assert "#SBATCH --requeue" in text and "set -euo pipefail" in text
        assert 'source "$MEGATHINK_REPO/slurm/lib/megathink_job.sh"' in text and 'megathink_job_main "$@"' in text
        experiment = re.search(r'EXPERIMENT:=([\w.]+)', text).group(1)
        assert experiment in experiments, recipe.name
        assert f"--job-name={experiment}" in text
        assert len(text.splitlines()) < 40, f"{recipe.name}: logic belongs in the library"
        assert (("PRESAMPLE:=1" in text) == recipe.name.startswith("adaptthink")), recipe.name
