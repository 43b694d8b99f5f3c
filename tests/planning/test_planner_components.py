"""The planner's components against values computed by hand (and one measured step).

Shapes are small so every number below can be checked on paper: h = 64, i = 96, 4 heads of
16 (q = 64), 2 KV heads (k = 32), vocabulary 100 (megatron pads it to 128).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from megathink.config import (
    DataConfig,
    EvalConfig,
    KernelsConfig,
    ModelConfig,
    ParallelConfig,
    PlanConfig,
    RLConfig,
    RolloutConfig,
    RunConfig,
    SFTConfig,
    TrainerConfig,
)
from megathink.planning import ModelShape, plan_run
from megathink.planning.activations import activation_bytes, in_flight, layer_cost
from megathink.planning.generation_memory import kv_cache_bytes
from megathink.planning.layout import resolve_layout
from megathink.planning.logprob_memory import logprob_bytes
from megathink.planning.static_memory import rank_params, static_bytes
from megathink.planning.step_time import step_time
from megathink.planning.workload import Generation, MicroBatch, stage_work

HF_CONFIG = dict(model_type="qwen2", hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100, tie_word_embeddings=False)
SHAPE = ModelShape.from_hf_config(HF_CONFIG, dtype="float32")
BF16 = dataclasses.replace(SHAPE, dtype="bfloat16")


def run(**sections) -> RunConfig:
    return RunConfig(**sections)


def test_parameter_count_equals_the_transformers_model():
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    qwen = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in HF_CONFIG.items() if k != "model_type"}))
    assert SHAPE.total_params() == sum(p.numel() for p in qwen.parameters())
    llama_cfg = {**HF_CONFIG, "model_type": "llama", "tie_word_embeddings": True}
    llama = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in llama_cfg.items() if k != "model_type"}))
    shape = ModelShape.from_hf_config(llama_cfg, dtype="float32")
    assert shape.total_params() == sum(p.numel() for p in llama.parameters())  # tied: one matrix, no qkv bias


def test_megatron_rank_parameters_by_hand():
    # a layer: qkv 64 x (64 + 2 x 32) + 128 biases = 8320, out 64 x 64 = 4096, MLP 3 x 64 x 96 = 18432
    # -> (8320 + 4096 + 18432) / tp 2 = 15424, + 2 norms x 64 = 15552; embedding 128 / 2 x 64 = 4096
    cfg = run(parallel=ParallelConfig(backend="megatron", tp=2, pp=2))
    layout = resolve_layout(cfg, SHAPE, world_size=4)
    assert rank_params(SHAPE, layout, first=True, last=False).params == 2 * 15552 + 4096
    assert rank_params(SHAPE, layout, first=False, last=True).params == 2 * 15552 + 64 + 4096  # final norm, lm_head


def test_optimizer_state_is_sharded_by_zero_and_kept_in_fp32_for_bf16():
    cfg = run(parallel=ParallelConfig(backend="megatron", tp=2, distributed_optimizer=True), model=ModelConfig(dtype="bfloat16"))
    layout = resolve_layout(cfg, BF16, world_size=8)  # dp 4
    assert layout.zero == 4
    params = rank_params(BF16, layout, first=True, last=True).params
    static = static_bytes(BF16, layout, first=True, last=True)
    assert (static.weights, static.gradients) == (2 * params, 2 * params)
    assert (static.master_weights, static.moments) == (4 * params / 4, 8 * params / 4)
    assert static.sampler == 2 * BF16.total_params()  # rank 0's HF copy
    fp32 = static_bytes(SHAPE, resolve_layout(run(), SHAPE), first=True, last=True)
    assert fp32.master_weights == 0 and fp32.moments == 8 * SHAPE.total_params()


def test_transformers_layer_bytes_by_hand():
    layout = resolve_layout(run(), SHAPE, device="cpu")
    padded = MicroBatch(tokens=2 * 32, width=32, packed=False)  # two rows: padded, a mask
    # norms 2 (4h + 4 + 2 x 4h) = 1544; attention 4 (2q + 2q repeated) + 4a = 1040; MLP 4 x 4 i = 1536;
    # mask 4 x 32 = 128 per token
    assert layer_cost(SHAPE, layout, padded).saved == (1544 + 1040 + 1536 + 128) * 64
    single = MicroBatch(tokens=32, width=32, packed=False)  # one row: no padding, GQA without repeat
    assert layer_cost(SHAPE, layout, single).saved == (1544 + 4 * (2 * 64 + 2 * 32) + 16 + 1536) * 32
    full = resolve_layout(run(parallel=ParallelConfig(recompute="full")), SHAPE, device="cpu")
    acts = activation_bytes(SHAPE, full, padded, 2, first=True, last=False)
    assert acts.kept == 4 * (4 * 64 * 64) + 8 * 64 + 2 * 16 * 4 * 64 + 64 * 32  # inputs, ids, cos/sin, bool mask


def test_megatron_local_and_te_layer_bytes_by_hand():
    mb = MicroBatch(tokens=64, width=64, packed=True)
    local = resolve_layout(run(parallel=ParallelConfig(backend="megatron", tp=2, pack_sequences=True)), SHAPE,
                           world_size=2, device="cpu")
    # norms 2 (12h + 4) = 1544; attention 4 (2q + 2q) / 2 + 4a / 2 = 520; THD mask 4 x 64 = 256;
    # MLP 5 x 4 i / 2 = 960 per token; RoPE 4 d 4 per position = 256 x 64
    assert layer_cost(SHAPE, local, mb).saved == (1544 + 520 + 256 + 960) * 64 + 256 * 64
    te = dataclasses.replace(local, device="cuda", layers="megatron_te")
    # norms 2 (2 x 4h + 4) = 1032; attention 4 (2q + 2k) / 2 + 8 = 392; MLP 3 x 4 i / 2 = 576
    assert layer_cost(SHAPE, te, mb).saved == (1032 + 392 + 576) * 64 + 256 * 64


def test_pipeline_in_flight_micro_batches():
    pp4 = resolve_layout(run(parallel=ParallelConfig(backend="megatron", pp=4)), SHAPE, world_size=4)
    assert (in_flight(pp4, 8, first=True), in_flight(pp4, 2, first=True), in_flight(pp4, 8, first=False)) == (4, 2, 1)
    vpp = resolve_layout(run(parallel=ParallelConfig(backend="megatron", pp=2, vpp=2)), SHAPE, world_size=2)
    # rank 0 warms up 2 (pp - 1) + (vpp - 1) pp = 4 chunks, + 1: 5 chunks of half its layers
    assert (in_flight(vpp, 8, first=True), in_flight(vpp, 8, first=False)) == (2.5, 1.5)


def test_largest_micro_batch():
    rl = dict(rl=RLConfig(micro_batch_size=4, prompts_per_step=8), rollout=RolloutConfig(max_new_tokens=1000),
              plan=PlanConfig(max_prompt_tokens=200), data=DataConfig(max_seq_len=4096), stages=["rl"])
    layout = resolve_layout(run(**rl), SHAPE)
    assert stage_work(run(**rl), "rl", layout).largest == MicroBatch(tokens=4 * 1200, width=1200, packed=False)
    budget = {**rl, "rl": RLConfig(micro_batch_size=4, prompts_per_step=8, max_tokens_per_micro_batch=3000)}
    assert stage_work(run(**budget), "rl", layout).largest == MicroBatch(tokens=3000, width=1200, packed=False)
    packed = {**budget, "parallel": ParallelConfig(backend="megatron", pack_sequences=True)}
    mt = resolve_layout(run(**packed), SHAPE, world_size=1)
    assert stage_work(run(**packed), "rl", mt).largest == MicroBatch(tokens=3000, width=3000, packed=True)
    sft = run(sft=SFTConfig(micro_batch_size=3), data=DataConfig(max_seq_len=512))
    assert stage_work(sft, "sft", layout).largest == MicroBatch(tokens=2 * 3 * 512, width=512, packed=False)


def test_generation_on_the_trainer_gpu_only_with_the_local_engine():
    """The local engine generates next to the shards (rank 0); SGLang engines on their own GPUs, the
    SFT stage's evaluations included (trainer/stage_eval.py), so rank 0 plans no generation phase."""
    base = dict(rollout=RolloutConfig(max_new_tokens=1000, batch_size=8), eval=EvalConfig(max_new_tokens=700, batch_size=4),
                plan=PlanConfig(max_prompt_tokens=200), data=DataConfig(max_seq_len=4096))
    layout = resolve_layout(run(**base), SHAPE)
    assert stage_work(run(**base), "sft", layout).generations == (Generation(4, 900, "evaluation"),)
    assert [g.what for g in stage_work(run(**base, stages=["rl"]), "rl", layout).generations] == ["rollout", "evaluation"]
    sglang = {**base, "rollout": RolloutConfig(max_new_tokens=1000, batch_size=8, engine="sglang")}
    assert stage_work(run(**sglang), "sft", layout).generations == ()
    assert stage_work(run(**sglang, stages=["rl"]), "rl", layout).generations == ()


def test_kv_cache_and_chunked_log_prob_buffers_by_hand():
    gen = Generation(sequences=8, length=300, what="rollout")
    # per token: 4 layers x 2 x (2 x 16) x 4 bytes = 1024, + one layer's growth copy 128
    assert kv_cache_bytes(SHAPE, gen) == 8 * 300 * (1024 + 128)
    layout = resolve_layout(run(), SHAPE)
    head = logprob_bytes(SHAPE, layout, KernelsConfig(logprob="chunked", chunk_tokens=10), 1000, entropy=False)
    tile = 10 * 100  # chunk_tokens x V elements
    assert head.forward == 4 * tile
    assert head.backward == 4 * tile + 1000 * 64 * 4 + 100 * 64 * 4  # tile, fp32 hidden gradient, lm_head gradient
    assert KernelsConfig().logprob_for(SHAPE.vocab) == "naive"  # 'auto' on a small vocabulary: full logits
    naive = logprob_bytes(SHAPE, layout, KernelsConfig(), 1000, entropy=False)
    assert naive.backward == 2 * 4 * 1000 * 100


def test_step_time_by_hand():
    cfg = run(stages=["sft"], sft=SFTConfig(micro_batch_size=1, grad_accum_steps=1), data=DataConfig(max_seq_len=100),
              plan=PlanConfig(length_fill=1.0, mfu=0.5, peak_tflops=1.0), kernels=KernelsConfig(logprob="chunked"))
    layout = resolve_layout(cfg, SHAPE)
    work = stage_work(cfg, "sft", layout)
    forward = 2 * SHAPE.matmul_params() + 2 * 4 * 64 * 100  # matmuls + causal attention over 100 tokens
    flops = 200 * (3 * forward + 2 * 64 * 100)  # 2 rows x 100; the chunked head recomputes its logits
    assert step_time(cfg, SHAPE, layout, work).flops == flops
    assert step_time(cfg, SHAPE, layout, work).seconds == pytest.approx(flops / 0.5e12)


def test_a_measured_hf_sft_step_is_within_15_percent_of_the_plan(tmp_path):
    """A tiny real SFT step measured with the storage tracker (as benchmarks/memory_planner.py does)."""
    from megathink.data.tokenizer import load_tokenizer
    from megathink.data.types import SFTBatch
    from megathink.planning.storage_tracker import LiveStorageTracker
    from megathink.trainer.lr_schedule import build_scheduler
    from megathink.trainer.policy import build_policy
    from megathink.trainer.sft_step import sft_step

    torch.manual_seed(0)
    cfg = run(model=ModelConfig(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=256,
                                max_position_embeddings=512),
              data=DataConfig(max_seq_len=384), sft=SFTConfig(micro_batch_size=2, grad_accum_steps=2),
              trainer=TrainerConfig(device="cpu"))
    bundle = load_tokenizer(cfg.tokenizer)
    policy = build_policy(cfg, cfg.model, bundle, tmp_path)
    optimizer = policy.build_optimizer(cfg.sft.optimizer)
    scheduler = build_scheduler(optimizer, cfg.sft.optimizer, 4)
    batches = []
    for _ in range(2):
        ids = torch.randint(0, bundle.vocab_size, (4, 384))
        mask = torch.ones_like(ids)
        mask[1::2, 340:] = 0  # the short forms end earlier: right padding
        batches.append(SFTBatch(ids, mask, mask.float(), modes=("think", "short") * 2))

    def step() -> None:
        sft_step(policy.backend, batches, optimizer, scheduler, grad_clip=1.0, control=bundle.control)

    step()  # gradients and AdamW state exist from here on
    with LiveStorageTracker() as tracker:
        tracker.track_module(policy.backend.model)
        tracker.track_tensors(v for s in optimizer.state.values() for v in s.values())
        step()
    shape = ModelShape.from_model_config(cfg.model, vocab_size=bundle.vocab_size)
    phases = {p.name: p.total for p in plan_run(cfg, shape, device="cpu").stage("sft").memory.ranks[0].phases}
    planned = max(phases["training"], phases["optimizer step"])
    assert planned == pytest.approx(tracker.peak_bytes, rel=0.15)
