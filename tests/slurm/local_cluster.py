"""A real one-node SLURM cluster on this machine, for the tests marked `slurm`.

`.ci/install_slurm.sh` installs the Debian packages (slurm-wlm, munge); this module writes a
slurm.conf / gres.conf into a fresh folder at test time (the node is this host, `hostname -s`,
with its real CPU count and memory and 8 fake GPUs: character devices made with mknod, so jobs
see CUDA_VISIBLE_DEVICES but nothing else changes), starts munged, slurmctld and slurmd on
private ports and a private munge socket, and stops exactly those processes by PID. Nothing is
written under /etc or /run: client commands find the cluster through `SLURM_CONF`, which
`LocalCluster.env` carries.

Facts this relies on (measured, see the shared PLATFORM_NOTES): the daemons start by hand in
the order munged (as the munge user), slurmctld, slurmd; without `EnforcePartLimits=ALL` an
oversized job pends forever; polling squeue/scontrol every 0.2 s beats `sbatch --wait`.
`AuthInfo=cred_expire` also bounds how long a requeued job waits before it starts again
(120 s by default; 5 is the lowest value slurmctld accepts, a smaller one falls back to 120).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
FAKE_GPUS = 8
FAKE_GPU_MAJOR = 240  # a "local/experimental" character-device major; never a real device's
PARTITION = "debug"
TERMINAL_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED",
}


def find_tool(name: str) -> Optional[str]:
    """Path of a SLURM/munge binary (the daemons live in /usr/sbin, often not on a user's PATH)."""
    return shutil.which(name) or next((p for d in ("/usr/sbin", "/sbin") if os.access(p := f"{d}/{name}", os.X_OK)), None)


def unavailable_reason() -> Optional[str]:
    """Why a local cluster cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "not root: the local SLURM daemons (slurmd) must run as root"
    missing = [name for name in (*DAEMONS, *CLIENTS) if find_tool(name) is None]
    if missing:
        return f"SLURM/munge not installed (missing {', '.join(missing)}); run `bash .ci/install_slurm.sh` as root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (the munge package creates it)"
    if not Path("/etc/munge/munge.key").is_file():
        return "no /etc/munge/munge.key (the munge package creates it)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_memory_mb() -> int:
    """RealMemory a little under MemTotal (slurmd drains a node that reports less than configured)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    raise RuntimeError("no MemTotal in /proc/meminfo")


@dataclass
class LocalCluster:
    """A started one-node cluster; `env` is what client commands and jobs need (SLURM_CONF)."""

    root: Path
    host: str
    cpus: int
    conf: Path
    munge_dir: Path
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """A client command (sbatch, squeue, scontrol, ...) against this cluster."""
        cmd = [find_tool(args[0]) or args[0], *args[1:]]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def sbatch(self, *args: str, env: Optional[dict[str, str]] = None, cwd: Optional[Path] = None) -> int:
        """Submit a batch job; returns its id."""
        proc = subprocess.run(
            [find_tool("sbatch"), "--parsable", *args], env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=30, cwd=cwd,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return int(proc.stdout.strip().split(";")[0])

    def job_info(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as key -> value (finished jobs stay visible for MinJobAge)."""
        out = self.run("scontrol", "show", "job", "-o", str(job_id), check=False).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def job_state(self, job_id: int) -> str:
        return self.job_info(job_id).get("JobState", "UNKNOWN")

    def wait_for(self, job_id: int, states: set[str], timeout: float) -> str:
        """Poll every 0.2 s until the job is in one of `states`; returns it (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in states:
                return state
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s (waited for {sorted(states)})")

    def wait_done(self, job_id: int, timeout: float) -> str:
        """Wait for a terminal state; cancel the job and raise when it does not come in time."""
        try:
            return self.wait_for(job_id, TERMINAL_STATES, timeout)
        except TimeoutError:
            self.run("scancel", str(job_id), check=False)
            raise

    def stop(self) -> None:
        """Stop the daemons this cluster started by PID: SIGTERM to all, then SIGKILL to any
        still alive after 10 s; remove the munge folder."""
        pids = [self.pids.pop(name) for name in reversed(list(self.pids))]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.munge_dir, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def write_config(root: Path, host: str, cpus: int, munge_dir: Path) -> Path:
    """slurm.conf + gres.conf (8 fake GPUs) for a one-node cluster under `root`, talking to the
    munged whose socket is in `munge_dir`; returns slurm.conf."""
    for sub in ("state", "spool", "log", "gpus"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    gpu_files = []
    for index in range(FAKE_GPUS):
        path = root / "gpus" / f"fakegpu{index}"
        if not path.exists():
            os.mknod(path, 0o666 | 0o020000, os.makedev(FAKE_GPU_MAJOR, index))  # S_IFCHR
        gpu_files.append(path)
    (root / "gres.conf").write_text(
        "AutoDetect=off\n" f"NodeName={host} Name=gpu File={root / 'gpus'}/fakegpu[0-{FAKE_GPUS - 1}]\n"
    )
    munge_socket = munge_dir / "munge.socket.2"
    lines = [
        "ClusterName=megathink-test",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=cred_expire=5,socket={munge_socket}",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "EnforcePartLimits=ALL",
        "ReturnToService=2",
        "GresTypes=gpu",
        "KillWait=5",
        "SchedulerParameters=sched_interval=1,bf_interval=1",  # a requeued job restarts in ~6 s, not ~20
        "MinJobAge=600",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmdSpoolDir={root}/spool",
        f"StateSaveLocation={root}/state",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={node_memory_mb()} Gres=gpu:{FAKE_GPUS} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _start_munged(folder: Path) -> int:
    """munged as the munge user, its socket, PID, log and seed files in `folder`; returns its PID."""
    munge = pwd.getpwnam("munge")
    folder.mkdir(mode=0o755, exist_ok=True)
    os.chown(folder, munge.pw_uid, munge.pw_gid)
    pid_file = folder / "munged.pid"
    proc = subprocess.run(
        [
            find_tool("runuser"), "-u", "munge", "--", find_tool("munged"), "--force",
            f"--socket={folder / 'munge.socket.2'}", f"--pid-file={pid_file}",
            f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}",
        ],
        capture_output=True, text=True, timeout=30,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"munged did not start ({proc.returncode}): {proc.stderr.strip()}")
    return _read_pid(pid_file, "munged", folder / "munged.log")


def _read_pid(pid_file: Path, name: str, log: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.is_file() and pid_file.read_text().strip():
            return int(pid_file.read_text().split()[0])
        time.sleep(0.05)
    tail = log.read_text()[-2000:] if log.is_file() else "(no log)"
    raise RuntimeError(f"{name} wrote no PID file {pid_file} within {timeout:.0f} s; its log:\n{tail}")


def start_cluster(root: Optional[Path] = None) -> LocalCluster:
    """Write the config under `root` (a new temporary folder by default) and start the daemons.

    Returns once the node is idle. On any failure the daemons already started are stopped.
    """
    root = Path(root or tempfile.mkdtemp(prefix="megathink-slurm-"))
    # munged runs as the munge user, which must reach its socket folder: a folder of its own
    # under the system temp folder (pytest's temporary folders are private to root).
    munge_dir = Path(tempfile.mkdtemp(prefix="megathink-munge-"))
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    conf = write_config(root, host, cpus, munge_dir)
    cluster = LocalCluster(root=root, host=host, cpus=cpus, conf=conf, munge_dir=munge_dir)
    try:
        cluster.pids["munged"] = _start_munged(munge_dir)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run(
                [find_tool(daemon), "-f", str(cluster.conf)], env=cluster.env, check=True,
                capture_output=True, text=True, timeout=30,
            )
            cluster.pids[daemon] = _read_pid(root / f"{daemon}.pid", daemon, root / "log" / f"{daemon}.log")
        _wait_idle(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_idle(cluster: LocalCluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        proc = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        state = proc.stdout.strip()
        if state == "idle":
            return
        time.sleep(0.1)
    log = (cluster.root / "log" / "slurmd.log").read_text()[-2000:]
    raise RuntimeError(f"the local SLURM node is {state!r}, not idle, after {timeout:.0f} s; slurmd log:\n{log}")
