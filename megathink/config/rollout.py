"""Sampling settings of the rollout engine (and of evaluation, which samples the same way), and
where the samples come from: the policy in this process (`engine: local`) or SGLang-protocol
HTTP servers (`engine: sglang`, settings in the nested `sglang` section).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Optional

from megathink.config.validation import ConfigError, check_choice, check_float, check_int, check_nonempty_str, fail

ENGINES = ("local", "sglang")
WEIGHT_SYNC_MODES = ("disk", "nccl")
PLACEMENTS = ("disaggregated", "colocated")
LAUNCH_PLACEHOLDERS = ("python", "model_path", "host", "port", "index", "batch_size", "api_key")
"""The `{name}`s a launch command may use (`SGLangConfig.launch_command`)."""


@dataclass(kw_only=True)
class SGLangConfig:
    """Rollout servers speaking SGLang's native HTTP API (SGLang itself, or `megathink serve`)."""

    urls: list[str] = field(default_factory=list)
    """Attach to these running servers ('http://host:port') instead of launching any; empty: launch
    `num_engines` servers with `launch_command`. Attached servers are never restarted or stopped."""

    launch_command: str = "python -m sglang.launch_server --model-path {model_path} --host {host} --port {port}"
    """Command line of one launched engine, split like a shell would split it (never run through a
    shell). Placeholders: {python} (this interpreter), {model_path} (the weights to serve: model.path,
    the stage's start folder, or the latest synced folder on a restart), {host}, {port}, {index}
    (engine number), {batch_size} (rollout.batch_size), {api_key} (visible in process lists). On CPU:
    '{python} -m megathink.launch.cli serve --model-path {model_path} --host {host} --port {port}'."""

    num_engines: int = 1
    """Engines to launch (ignored when `urls` is set)."""

    host: str = "127.0.0.1"
    """Address launched engines bind and are reached at."""

    base_port: int = 30000
    """Engine i listens on base_port + i; 0 picks free ports."""

    gpus_per_engine: int = 0
    """GPUs per launched engine: engine i gets CUDA_VISIBLE_DEVICES = the `gpus_per_engine` ids from
    first_gpu + i * gpus_per_engine; 0 leaves CUDA_VISIBLE_DEVICES as it is (CPU engines)."""

    first_gpu: int = 0
    """First GPU id handed to the launched engines (the trainer keeps the ones below it)."""

    health_timeout_s: float = 900.0
    """How long a launched or attached engine may take to answer GET /health (loading a 7B model
    and capturing CUDA graphs takes minutes); past it the run fails naming the URL and the log file."""

    request_timeout_s: float = 3600.0
    """Deadline of one HTTP request (a /generate batch or a weight update)."""

    max_retries: int = 3
    """Times a failed /generate batch is retried (on another engine when there is one) before the
    rollout step fails; a failing engine is taken out of rotation (and restarted when launched)."""

    retry_backoff_s: float = 1.0
    """Wait before the first retry, doubled for each further retry of the same batch."""

    sequences_per_request: int = 64
    """Sequences (request x sample) per /generate call; calls are spread over the engines as they free up."""

    weight_sync: str = "disk"
    """How trained weights reach the engines: 'disk' (safetensors folder + /update_weights_from_disk;
    any placement, CPU too) or 'nccl' (broadcast from trainer rank 0 through
    /update_weights_from_distributed; disaggregated GPUs only)."""

    sync_dir: Optional[str] = None
    """Folder for synced weights (one sub-folder per weight version; the last two are kept). Must be
    readable by every engine (a shared file system across nodes). None: <stage folder>/rollout_weights."""

    api_key_env: str = "MEGATHINK_ROLLOUT_API_KEY"
    """Name of the environment variable holding the servers' API key (sent as 'Authorization:
    Bearer KEY'); unset or empty: no key. The key itself is never written to a config file."""

    placement: str = "disaggregated"
    """'disaggregated': engines on their own GPUs; 'colocated': engines share the trainer's GPUs and
    release their memory (/release_memory_occupation) after each rollout, resuming it before the next
    weight sync or rollout (launch SGLang with --enable-memory-saver)."""

    nccl_master_addr: str = ""
    """Address of trainer rank 0 as the engines reach it for the NCCL weight group; '' uses this host's name."""

    nccl_master_port: int = 0
    """TCP port of the NCCL weight group's rendezvous on trainer rank 0; 0 picks a free one."""

    nccl_bucket_mb: int = 512
    """Size cap of one /update_weights_from_distributed call's tensors (MiB)."""

    nccl_timeout_s: float = 600.0
    """Deadline of the NCCL group set-up and of every weight broadcast."""

    def __post_init__(self) -> None:
        for index, url in enumerate(self.urls):
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) < 9:
                fail(f"rollout.sglang.urls[{index}]", url, "must be a server address like 'http://10.0.0.5:30000'")
        if not self.urls:
            check_nonempty_str("rollout.sglang.launch_command", self.launch_command)
            _check_launch_command(self.launch_command)
        check_int("rollout.sglang.num_engines", self.num_engines, low=1)
        check_nonempty_str("rollout.sglang.host", self.host)
        check_int("rollout.sglang.base_port", self.base_port, low=0, high=65535)
        if 0 < self.base_port < 1024 or self.base_port + self.num_engines - 1 > 65535:
            fail(
                "rollout.sglang.base_port", self.base_port,
                f"engine ports base_port..base_port+{self.num_engines - 1} must lie in [1024, 65535] (0 picks free ports)",
            )
        check_int("rollout.sglang.gpus_per_engine", self.gpus_per_engine, low=0)
        check_int("rollout.sglang.first_gpu", self.first_gpu, low=0)
        check_float("rollout.sglang.health_timeout_s", self.health_timeout_s, low=0.0, low_inclusive=False)
        check_float("rollout.sglang.request_timeout_s", self.request_timeout_s, low=0.0, low_inclusive=False)
        check_int("rollout.sglang.max_retries", self.max_retries, low=0)
        check_float("rollout.sglang.retry_backoff_s", self.retry_backoff_s, low=0.0)
        check_int("rollout.sglang.sequences_per_request", self.sequences_per_request, low=1)
        check_choice("rollout.sglang.weight_sync", self.weight_sync, WEIGHT_SYNC_MODES)
        if self.sync_dir is not None:
            check_nonempty_str("rollout.sglang.sync_dir", self.sync_dir)
        check_nonempty_str("rollout.sglang.api_key_env", self.api_key_env)
        check_choice("rollout.sglang.placement", self.placement, PLACEMENTS)
        if self.placement == "colocated" and self.weight_sync == "nccl":
            raise ConfigError(
                "rollout.sglang.weight_sync = 'nccl' is invalid with rollout.sglang.placement = 'colocated': NCCL "
                "cannot connect two ranks on one GPU; use rollout.sglang.weight_sync=disk, or placement=disaggregated."
            )
        if not isinstance(self.nccl_master_addr, str):
            fail("rollout.sglang.nccl_master_addr", self.nccl_master_addr, "must be a host name or address ('' for this host)")
        check_int("rollout.sglang.nccl_master_port", self.nccl_master_port, low=0, high=65535)
        check_int("rollout.sglang.nccl_bucket_mb", self.nccl_bucket_mb, low=1)
        check_float("rollout.sglang.nccl_timeout_s", self.nccl_timeout_s, low=0.0, low_inclusive=False)


def _check_launch_command(command: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(command) if name is not None}
    except ValueError as err:
        raise ConfigError(
            f"rollout.sglang.launch_command = {command!r} is invalid: {err} (write a literal brace as '{{{{' or '}}}}')."
        ) from err
    unknown = sorted(names - set(LAUNCH_PLACEHOLDERS))
    if unknown:
        fail(
            "rollout.sglang.launch_command", command,
            f"unknown placeholder {{{unknown[0]}}}; the placeholders are " + ", ".join("{" + p + "}" for p in LAUNCH_PLACEHOLDERS),
        )
    for needed in ("model_path", "port"):
        if needed not in names:
            fail("rollout.sglang.launch_command", command, f"it must contain {{{needed}}} (each engine gets its own)")


@dataclass(kw_only=True)
class RolloutConfig:
    engine: str = "local"
    """'local': batched sampling from the policy in this process; 'sglang': HTTP servers speaking
    SGLang's native API (SGLang on GPUs, `megathink serve` on CPU), set up in `sglang`."""

    temperature: float = 0.6
    """Sampling temperature; log-probs for the loss are computed at the same temperature.
    0 means greedy decoding."""

    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]; 1 disables it."""

    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables it."""

    n_samples: int = 8
    """Responses sampled per prompt (the group size of GRPO/DeGRPO)."""

    max_new_tokens: int = 256
    """Cap on generated tokens per response."""

    batch_size: int = 256
    """Sequences generated together in one batch (local engine; `{batch_size}` in a launch command)."""

    sglang: SGLangConfig = field(default_factory=SGLangConfig)
    """Servers, launch, retries and weight sync of `engine: sglang` (ignored by the local engine)."""

    def __post_init__(self) -> None:
        check_choice("rollout.engine", self.engine, ENGINES)
        check_float("rollout.temperature", self.temperature, low=0.0, high=10.0)
        check_float("rollout.top_p", self.top_p, low=0.0, high=1.0, low_inclusive=False)
        check_int("rollout.top_k", self.top_k, low=0)
        check_int("rollout.n_samples", self.n_samples, low=1)
        check_int("rollout.max_new_tokens", self.max_new_tokens, low=1)
        check_int("rollout.batch_size", self.batch_size, low=1)
