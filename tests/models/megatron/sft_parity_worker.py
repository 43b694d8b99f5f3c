"""torchrun worker: the same SFT steps on the HF backend (in-process reference) and on megatron at (tp, pp).

`sft_parity_worker.py TP PP STEPS OUT_JSON [IMPL [pack]] [vpp=V] [cp=C]` (kernels.logprob of both backends, default chunked; `pack`: megatron packs samples into rows; `vpp=V`: V model chunks per pipeline rank, interleaved schedule, with 2 V layers; `cp=C`: C context-parallel ranks share every row). Both start from the same random toy Qwen2 weights,
see the same batches (2 micro-batches per step) and use the same AdamW and schedule; the last
stage writes both loss curves and grad norms.
"""

import json
import sys

from megathink.config import KernelsConfig, DataConfig, ModelConfig, OptimizerConfig, TokenizerConfig
from megathink.data.sft_examples import SFTBatchIterator, prepare_sft_pairs
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import build_toy_datasets
from megathink.models import build_hf_backend
from megathink.models.megatron.backend import MegatronBackend
from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.model import build_gpt_chunks
from megathink.models.megatron.weights_io import load_hf_into
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.optim import build_adamw
from megathink.trainer.sft_step import sft_step

VPP = int(next((a.split("=")[1] for a in sys.argv if a.startswith("vpp=")), "1"))
CP = int(next((a.split("=")[1] for a in sys.argv if a.startswith("cp=")), "1"))
sys.argv = [a for a in sys.argv if not a.startswith(("vpp=", "cp="))]
SMALL = ModelConfig(hidden_size=32, num_layers=2 * VPP, num_heads=4, num_kv_heads=2, intermediate_size=64)
OPT = OptimizerConfig(lr=3e-3, min_lr=3e-4, warmup_ratio=0.2, grad_clip=0.5)


def batches(bundle, steps):
    train, _ = build_toy_datasets(DataConfig(levels=[1, 2, 3], toy_train_size=64, toy_eval_per_level=0))
    pairs, _ = prepare_sft_pairs(train, bundle, TokenizerConfig(), 64)
    it = SFTBatchIterator(pairs, 3, seed=0, pad_id=bundle.pad_id)
    return [[next(it), next(it)] for _ in range(steps)]


def train(backend, data, steps):
    optimizer = build_adamw(backend.named_parameters(), OPT)
    scheduler = build_scheduler(optimizer, OPT, steps)
    out = []
    for micro in data:
        stats = sft_step(backend, micro, optimizer, scheduler, grad_clip=OPT.grad_clip, control=bundle.control)
        out.append((stats.loss, stats.grad_norm))
    return out


tp, pp, steps, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
impl = sys.argv[5] if len(sys.argv) > 5 else "chunked"
bundle = load_tokenizer(TokenizerConfig())
data = batches(bundle, steps)
hf = build_hf_backend(SMALL, bundle, device="cpu", seed=0, kernels=KernelsConfig(logprob=impl))
initial = {k: v.clone() for k, v in hf.model.state_dict().items()}
spec = GPTSpec.from_hf_config(hf.model.config.to_dict())
if spec.tied_embeddings:
    initial.pop("lm_head.weight", None)
reference = train(hf, data, steps)

info = init_parallel(tp, pp, vpp=VPP, cp=CP, seed=0)
model, _ = build_gpt_chunks(spec, tp=tp, pp=pp, vpp=VPP, cp=CP)
load_hf_into(model, initial, spec, info)
got = train(MegatronBackend(model, spec, info, pad_id=bundle.pad_id, logprob_impl=impl, pack=sys.argv[6:] == ['pack']), data, steps)
if info.last_stage and info.tp_rank == 0 and info.main_replica:
    json.dump({"hf": reference, "megatron": got}, open(path, "w"))
shutdown_parallel()
