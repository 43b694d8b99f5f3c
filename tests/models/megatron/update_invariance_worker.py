"""torchrun worker: one RL update is the same for DP=1 and DP=2 and any micro-batch split.

`update_invariance_worker.py OUT_JSON` on 2 processes (tp = pp = 1, so dp = 2). A rollout
batch of 16 responses of different lengths is sampled from a random toy Qwen2 (before the
process group exists); the reference is the HF backend's update in this process with one
micro-batch of 16 (DP = 1). The megatron backend then takes the same first update from the same
weights at DP = 2: micro-batches of 1 sequence (8 per replica), and a token budget with packed
rows (Karmarkar-Karp over the replicas). SGD, so the updated weights show any gradient
difference. For each algorithm the last line of every variant records the largest weight and
metric differences against the reference; rank 0 writes them.
"""

import json
import sys

import torch

from megathink.config import ModelConfig, OptimizerConfig, RLConfig, TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.methods.degrpo import DeGRPOConfig
from megathink.methods.grpo import GRPOConfig
from megathink.models import build_hf_backend
from megathink.models.megatron.backend import MegatronBackend
from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.model import build_gpt_chunks
from megathink.models.megatron.weights_io import load_hf_into
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, SamplingParams
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.rl_batch import build_rl_batch
from megathink.trainer.rl_update import rl_update, score_batch

SMALL = ModelConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)
OPT = OptimizerConfig(lr=0.5, min_lr=0.5, schedule="constant", warmup_ratio=0.0, grad_clip=0.0)
ALGORITHMS = {
    "degrpo": DeGRPOConfig(alpha=0.5, kl_coef=0.0, entropy_coef=1e-2),
    "grpo_sum_norm": GRPOConfig(agg="seq_mean_token_sum_norm", kl_coef=0.0, entropy_coef=0.0),
}
VARIANTS = {"dp2_micro1": dict(micro_batch_size=1), "dp2_budget_packed": dict(max_tokens_per_micro_batch=48)}
KEYS = ("loss", "pg_loss", "clip_frac", "grad_norm", "entropy")


def update(backend, batch, algorithm, mini_batches, **split):
    rl = RLConfig(prompts_per_step=4, mini_batches=mini_batches, optimizer=OPT, **split)
    optimizer = torch.optim.SGD([p for _, p in backend.named_parameters()], lr=OPT.lr)
    scheduler = build_scheduler(optimizer, OPT, mini_batches)
    old = score_batch(backend, batch, temperature=0.9, rl=rl) if mini_batches > 1 else None
    metrics = rl_update(backend, batch, old, None, optimizer, scheduler, algorithm=algorithm, rl=rl, temperature=0.9)
    return {key: metrics[key] for key in KEYS if key in metrics}


path = sys.argv[1]
bundle = load_tokenizer(TokenizerConfig())
hf = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
initial = {k: v.clone() for k, v in hf.model.state_dict().items()}
prompts = [bundle.tokenizer.encode(t, add_special_tokens=False) for t in ("1+2=", "34+52=", "7+7=", "123+4=")]
samples = LocalEngine(hf, pad_id=bundle.pad_id).generate(
    [RolloutRequest(p, group_id=g) for g, p in enumerate(prompts)],
    SamplingParams(temperature=1.0, max_new_tokens=14, stop_token_ids=(bundle.eos_id,), n=4, seed=5),
)
batch = build_rl_batch(samples, torch.linspace(-1.0, 1.0, len(samples)), pad_id=bundle.pad_id)
lengths = batch.response_lengths()
assert len(samples) == 16 and int(lengths.min()) < int(lengths.max())
spec = GPTSpec.from_hf_config(hf.model.config.to_dict())
loadable = {k: v for k, v in initial.items() if not (spec.tied_embeddings and k == "lm_head.weight")}

references = {}
for name, algorithm in ALGORITHMS.items():
    for mini_batches in (1, 2):
        hf.model.load_state_dict(initial)
        metrics = update(hf, batch, algorithm, mini_batches, micro_batch_size=16)
        references[name, mini_batches] = (metrics, {k: v.clone() for k, v in hf.model.state_dict().items()})

info = init_parallel(1, 1, seed=0)
assert info.dp == 2
model, _ = build_gpt_chunks(spec, tp=1, pp=1)
report = []
for name, algorithm in ALGORITHMS.items():
    for mini_batches in (1, 2):
        want_metrics, want_weights = references[name, mini_batches]
        for variant, split in VARIANTS.items():
            load_hf_into(model, loadable, spec, info)
            backend = MegatronBackend(model, spec, info, pad_id=bundle.pad_id, pack="max_tokens_per_micro_batch" in split)
            got_metrics = update(backend, batch, algorithm, mini_batches, **split)
            got_weights = backend.export_hf_state()
            if info.rank == 0:
                weight_diff = max(float((got_weights[k] - want_weights[k]).abs().max()) for k in got_weights)
                moved = max(float((want_weights[k] - initial[k]).abs().max()) for k in got_weights)
                report.append({
                    "algorithm": name, "mini_batches": mini_batches, "variant": variant,
                    "weight_diff": weight_diff, "weights_moved": moved,
                    "metrics": {k: [want_metrics[k], got_metrics.get(k)] for k in want_metrics},
                })
if info.rank == 0:
    json.dump(report, open(path, "w"))
shutdown_parallel()
