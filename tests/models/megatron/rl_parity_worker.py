"""torchrun worker: the same DeGRPO updates on the HF backend and on megatron at (tp, pp).

`rl_parity_worker.py TP PP OUT_JSON [IMPL [pack]] [vpp=V] [cp=C]` (kernels.logprob of both backends, default chunked; `pack`: megatron packs samples into rows; `vpp=V`: V model chunks per pipeline rank, interleaved schedule, with 2 V layers; `cp=C`: C context-parallel ranks share every row). One rollout batch is sampled (before the process group
exists) from a random toy Qwen2 by the local engine; both backends then take two rollout steps
over it from the same weights: a scoring pass for the old log-probs, 2 mini-batches of
2 micro-batches each, DeGRPO with the entropy bonus. The last stage writes both metric rows.
"""

import json
import sys

import torch

from megathink.config import (
    KernelsConfig,
    ModelConfig,
    OptimizerConfig,
    RLConfig,
    TokenizerConfig,
)
from megathink.data.tokenizer import load_tokenizer
from megathink.methods.degrpo import DeGRPOConfig
from megathink.models import build_hf_backend
from megathink.models.megatron.backend import MegatronBackend
from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.model import build_gpt_chunks
from megathink.models.megatron.weights_io import load_hf_into
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, SamplingParams
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.optim import build_adamw
from megathink.trainer.rl_batch import build_rl_batch
from megathink.trainer.rl_update import rl_update, score_batch

VPP = int(next((a.split("=")[1] for a in sys.argv if a.startswith("vpp=")), "1"))
CP = int(next((a.split("=")[1] for a in sys.argv if a.startswith("cp=")), "1"))
sys.argv = [a for a in sys.argv if not a.startswith(("vpp=", "cp="))]
SMALL = ModelConfig(hidden_size=32, num_layers=2 * VPP, num_heads=4, num_kv_heads=2, intermediate_size=64)
OPT = OptimizerConfig(lr=1e-3, min_lr=1e-3, schedule="constant", warmup_ratio=0.0, grad_clip=1.0)
RL = RLConfig(max_steps=2, prompts_per_step=4, mini_batches=2, micro_batch_size=4, optimizer=OPT)
ALGO = DeGRPOConfig(alpha=0.5, kl_coef=0.0, entropy_coef=1e-2)
KEYS = ("loss", "ctrl_loss", "resp_loss", "entropy", "clip_frac", "grad_norm")


def steps(backend, batch):
    optimizer = build_adamw(backend.named_parameters(), OPT)
    scheduler = build_scheduler(optimizer, OPT, 4)
    rows = []
    for _ in range(2):
        old = score_batch(backend, batch, temperature=0.8, rl=RL)
        metrics = rl_update(backend, batch, old, None, optimizer, scheduler, algorithm=ALGO, rl=RL, temperature=0.8)
        rows.append({key: metrics[key] for key in KEYS if key in metrics} | {"old_logp_sum": float(old.sum())})
    return rows


tp, pp, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
impl = sys.argv[4] if len(sys.argv) > 4 else "chunked"
bundle = load_tokenizer(TokenizerConfig())
hf = build_hf_backend(SMALL, bundle, device="cpu", seed=0, kernels=KernelsConfig(logprob=impl))
initial = {k: v.clone() for k, v in hf.model.state_dict().items()}
prompts = [bundle.tokenizer.encode(t, add_special_tokens=False) for t in ("1+2=", "34+5=", "7+7=", "12+30=")]
samples = LocalEngine(hf, pad_id=bundle.pad_id).generate(
    [RolloutRequest(p, group_id=g) for g, p in enumerate(prompts)],
    SamplingParams(temperature=0.8, max_new_tokens=8, stop_token_ids=(bundle.eos_id,), n=2, seed=3),
)
batch = build_rl_batch(samples, torch.tensor([1.0, -1.0, 0.5, -0.5, 0.25, -0.25, 1.0, -1.0]), pad_id=bundle.pad_id)
spec = GPTSpec.from_hf_config(hf.model.config.to_dict())
if spec.tied_embeddings:
    initial.pop("lm_head.weight", None)
reference = steps(hf, batch)

info = init_parallel(tp, pp, vpp=VPP, cp=CP, seed=0)
model, _ = build_gpt_chunks(spec, tp=tp, pp=pp, vpp=VPP, cp=CP)
load_hf_into(model, initial, spec, info)
got = steps(MegatronBackend(model, spec, info, pad_id=bundle.pad_id, logprob_impl=impl, pack=sys.argv[5:] == ['pack']), batch)
if info.last_stage and info.tp_rank == 0 and info.main_replica:
    json.dump({"hf": reference, "megatron": got}, open(path, "w"))
shutdown_parallel()
