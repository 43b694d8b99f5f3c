"""torchrun worker (2 processes): megatron's sequence parallelism at TP=2 on CPU, against TP=2 without it.

`sequence_parallel_worker.py OUT_DIR`. megathink refuses sequence parallelism without
Transformer Engine, because megatron's local layer spec builds torch norms that refuse it.
Everything else of the path is plain megatron-core and megathink code that runs on gloo: the
embedding's scatter of the sequence over the TP ranks, the linears' all-gathers and
reduce-scatters, the output layer's gather, megathink's row padding to a multiple of tp
(`MegatronBackend._round_up`), the hidden-state log-prob route's own gather
(`forward.hidden_through`) and the norm-gradient sum over TP (`MegatronBackend._finish_grads`).
This worker builds the sequence-parallel model through the same pieces as `build_gpt_chunks`
(`transformer_config(..., sequence_parallel=True)`, `layer_spec`, `gpt_chunks`) with one
stand-in: `SequenceParallelRMSNorm`, torch's RMSNorm with its weight marked `sequence_parallel`
as Transformer Engine's RMSNorm marks it (a norm is per token, so a split sequence changes
nothing in it). Each case (log-prob route, packing, recompute) runs a training pass
(2 micro-batches of 15 columns: padded to 16 for tp = 2) and a no-grad scoring pass on the
sequence-parallel model and on the reference; each rank writes OUT_DIR/rank<R>.json with the
largest loss, gradient and log-prob differences.
"""

import copy
import json
import sys
from pathlib import Path

import torch

from megathink.config import ModelConfig, TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.models import build_hf_backend
from megathink.models.megatron.backend import MegatronBackend
from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.model import Implementations, build_gpt_chunks, gpt_chunks, layer_spec, transformer_config
from megathink.models.megatron.weights_io import load_hf_into
from megathink.models.micro_batches import Scored

SMALL = ModelConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)
CASES = [  # name, kernels.logprob, pack, recompute
    ("chunked", "chunked", False, "none"), ("naive", "naive", False, "none"),
    ("chunked_packed", "chunked", True, "none"), ("chunked_full_recompute", "chunked", False, "full"),
]


class SequenceParallelRMSNorm(torch.nn.RMSNorm):
    """torch's RMSNorm with the weight marked as Transformer Engine marks it under sequence parallelism."""

    def __init__(self, config, hidden_size: int, eps: float = 1e-5, **_) -> None:
        super().__init__(hidden_size, eps=eps)
        self.weight.sequence_parallel = config.sequence_parallel


def sequence_parallel_chunks(spec: GPTSpec, recompute: str) -> list:
    from megatron.core.transformer import transformer_block

    impl = Implementations(layers="local", precision="fp32", cuda=torch.cuda.is_available())  # the local spec
    config = transformer_config(spec, tp=2, pp=1, impl=impl, recompute=recompute, sequence_parallel=True)
    decoder_layer = copy.deepcopy(layer_spec(impl))
    decoder_layer.submodules.input_layernorm = SequenceParallelRMSNorm
    decoder_layer.submodules.pre_mlp_layernorm = SequenceParallelRMSNorm
    final_norm = transformer_block.LayerNormImpl  # the block's final norm class
    transformer_block.LayerNormImpl = SequenceParallelRMSNorm
    try:
        return gpt_chunks(spec, config, decoder_layer)
    finally:
        transformer_block.LayerNormImpl = final_norm


def micro_batches(vocab: int) -> list[Scored]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for pad_left, pad_right in ((3, 0), (0, 4)):
        ids = torch.randint(3, vocab, (3, 15), generator=gen)  # 15 columns: not a multiple of tp
        mask = torch.ones_like(ids)
        mask[0, :pad_left] = 0
        mask[2, mask.shape[1] - pad_right :] = 0
        out.append(Scored(ids, mask))
    return out


def passes(backend: MegatronBackend, batches: list[Scored]) -> dict:
    total = float(sum(mb.attention_mask.sum() for mb in batches))

    def loss_fn(mb: Scored, logp: torch.Tensor, ent: torch.Tensor) -> tuple[torch.Tensor, dict]:
        mask = mb.attention_mask.to(logp.dtype)  # [b, T]
        loss = (-(logp * mask).sum() + 0.05 * (ent * mask).sum()) / total
        return loss, {"loss": float(loss.detach())}

    backend.train(True)
    for param in backend.parameters():
        param.grad = None
    metrics = backend.run_micro_batches(batches, loss_fn, entropy=True)
    grads = {n: p.grad.detach().clone() for n, p in backend.named_parameters()}
    with torch.no_grad():
        logp, ent = backend.logprobs_and_entropy(batches[1].input_ids, batches[1].attention_mask)
    return {"losses": [m["loss"] for m in metrics], "grads": grads, "logp": logp, "entropy": ent}


out_dir = Path(sys.argv[1])
bundle = load_tokenizer(TokenizerConfig())
hf = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
initial = {k: v.clone() for k, v in hf.model.state_dict().items()}
spec = GPTSpec.from_hf_config(hf.model.config.to_dict())
if spec.tied_embeddings:
    initial.pop("lm_head.weight", None)
batches = micro_batches(bundle.vocab_size)
info = init_parallel(2, 1, seed=0)
results = {}
for name, impl, pack, recompute in CASES:
    reference_chunks, _ = build_gpt_chunks(spec, tp=2, pp=1)
    sp_chunks = sequence_parallel_chunks(spec, recompute)
    for chunks in (reference_chunks, sp_chunks):
        load_hf_into(chunks, initial, spec, info)
    reference = MegatronBackend(reference_chunks, spec, info, pad_id=bundle.pad_id, logprob_impl=impl, pack=pack)
    parallel = MegatronBackend(sp_chunks, spec, info, pad_id=bundle.pad_id, logprob_impl=impl, pack=pack)
    want, got = passes(reference, batches), passes(parallel, batches)
    marked = [n for n, p in parallel.named_parameters() if getattr(p, "sequence_parallel", False)]
    results[name] = {
        "sequence_parallel": parallel.sequence_parallel and not reference.sequence_parallel,
        "losses": [want["losses"], got["losses"]],
        "grad_names": sorted(want["grads"]) == sorted(got["grads"]),
        "grad_max_diff": max(float((g - want["grads"][n]).abs().max()) for n, g in got["grads"].items()),
        "marked_grad_max_diff": max(float((got["grads"][n] - want["grads"][n]).abs().max()) for n in marked),
        "marked": len(marked),
        "grad_max": max(float(g.abs().max()) for g in want["grads"].values()),
        "logp_max_diff": float((got["logp"] - want["logp"]).abs().max()),
        "entropy_max_diff": float((got["entropy"] - want["entropy"]).abs().max()),
        "logp_shape": list(got["logp"].shape),
    }
(out_dir / f"rank{torch.distributed.get_rank()}.json").write_text(json.dumps(results))
shutdown_parallel()
