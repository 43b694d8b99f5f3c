"""torchrun worker (2 processes): parallel.recompute none / selective / full on megatron at TP=2, then PP=2.

`recompute_worker.py OUT_DIR`. One random 4-layer toy Qwen2 (the HF backend's, seed 0) is
loaded into megatron at TP=2 (chunked log-probs from hidden states, one row per sample) and at
PP=2 (naive log-probs from the logits slice, THD-packed rows); at each layout it is built once
per recompute mode and runs a training pass (2 micro-batches through megatron's schedule,
NLL + entropy loss, backward) and a no-grad scoring pass. Pre-hooks count the calls of each
decoder layer's input norm (the first module of the layer: a full recompute reruns it in the
backward pass) and of its core attention (a selective recompute reruns that alone). Each rank
writes OUT_DIR/rank<R>.json: per layout and mode, the losses, the largest gradient difference
from recompute none (per parameter, this rank's shard), the grad norm and the call counts.
"""

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
from megathink.models.megatron.model import build_gpt_chunks
from megathink.models.megatron.weights_io import load_hf_into
from megathink.models.micro_batches import Scored

SMALL = ModelConfig(hidden_size=32, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=64)
LAYOUTS = [("tp2", 2, 1, "chunked", False), ("pp2", 1, 2, "naive", True)]  # name, tp, pp, kernels.logprob, pack
MODES = ("none", "selective", "full")


def micro_batches(vocab: int) -> list[Scored]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for pad_left, pad_right in ((3, 0), (0, 4)):
        ids = torch.randint(3, vocab, (3, 15), generator=gen)
        mask = torch.ones_like(ids)
        mask[0, :pad_left] = 0  # left padding (RL prompts)
        mask[2, mask.shape[1] - pad_right :] = 0  # right padding (SFT)
        out.append(Scored(ids, mask))
    return out


class Calls:
    """Pre-hook counts on this rank's decoder layers: input norms and core attentions."""

    def __init__(self, chunks: list) -> None:
        self.layer = self.attention = 0
        for chunk in chunks:
            for layer in chunk.decoder.layers:
                layer.input_layernorm.register_forward_pre_hook(self._layer)
                layer.self_attention.core_attention.register_forward_pre_hook(self._attention)

    def _layer(self, *_: object) -> None:
        self.layer += 1

    def _attention(self, *_: object) -> None:
        self.attention += 1

    def take(self) -> dict:
        out = {"layer": self.layer, "attention": self.attention}
        self.layer = self.attention = 0
        return out


def run(layout: tuple, initial: dict, spec: GPTSpec, bundle, batches: list[Scored]) -> dict:
    _, tp, pp, impl, pack = layout
    info = init_parallel(tp, pp, seed=0)
    total = float(sum(mb.attention_mask.sum() for mb in batches))
    result, reference = {}, {}

    def loss_fn(mb: Scored, logp: torch.Tensor, ent: torch.Tensor) -> tuple[torch.Tensor, dict]:
        mask = mb.attention_mask.to(logp.dtype)  # [b, T]
        loss = (-(logp * mask).sum() + 0.05 * (ent * mask).sum()) / total
        return loss, {"loss": float(loss.detach())}

    for mode in MODES:
        chunks, _ = build_gpt_chunks(spec, tp=tp, pp=pp, recompute=mode)
        load_hf_into(chunks, initial, spec, info)
        calls = Calls(chunks)
        backend = MegatronBackend(chunks, spec, info, pad_id=bundle.pad_id, logprob_impl=impl, pack=pack)
        backend.train(True)
        metrics = backend.run_micro_batches(batches, loss_fn, entropy=True)
        train_calls = calls.take()
        grads = {n: p.grad.detach().clone() for n, p in backend.named_parameters()}
        norm = backend.clip_grad_norm(0.0)
        with torch.no_grad():
            scored = backend.logprobs(batches[0].input_ids, batches[0].attention_mask)
        score_calls = calls.take()
        if mode == "none":
            reference = {"grads": grads, "scored": scored}
        result[mode] = {
            "losses": [m["loss"] for m in metrics],
            "grad_norm": norm,
            "grad_max_diff": max(float((g - reference["grads"][n]).abs().max()) for n, g in grads.items()),
            "grad_max": max(float(g.abs().max()) for g in grads.values()),
            "grad_names": sorted(grads) == sorted(reference["grads"]),
            "scored_max_diff": float((scored - reference["scored"]).abs().max()),
            "train_calls": train_calls,
            "score_calls": score_calls,
            "layers_here": sum(len(c.decoder.layers) for c in chunks),
            "micro_batches": len(batches),
            "recompute_granularity": chunks[0].config.recompute_granularity,
        }
    return result  # the process group stays for the next layout (init_parallel rebuilds megatron's groups)


out_dir = Path(sys.argv[1])
bundle = load_tokenizer(TokenizerConfig())
hf = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
initial = {k: v.clone() for k, v in hf.model.state_dict().items()}
spec = GPTSpec.from_hf_config(hf.model.config.to_dict())
if spec.tied_embeddings:
    initial.pop("lm_head.weight", None)
batches = micro_batches(bundle.vocab_size)
results = {layout[0]: run(layout, initial, spec, bundle, batches) for layout in LAYOUTS}
rank = torch.distributed.get_rank()
(out_dir / f"rank{rank}.json").write_text(json.dumps(results))
shutdown_parallel()
