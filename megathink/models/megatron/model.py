"""Build this rank's megatron-core `GPTModel` (its pipeline stage, its tensor-parallel slice).

`build_gpt_chunks(spec, tp=, pp=, vpp=, precision=)` maps a `GPTSpec` onto a `TransformerConfig`
(RMSNorm, SwiGLU, RoPE with the model's theta, GQA groups, qkv bias, tied embeddings) and
picks the fastest layer implementation present: Transformer Engine's layer spec when
`transformer_engine` imports (fused norms + linears, FP8), else megatron-core's local spec
(plain torch), whose core attention is `local_attention.LocalCoreAttention` (torch SDPA, with
THD-packed rows and context parallelism, which megatron's own refuses). With `cp` > 1 each
sequence is split over the cp ranks: TE's ring attention or the local all-gather attention.
`precision` is "fp32", "bf16" or "fp8"; fp8 needs Transformer Engine and fails
fast naming it. `Implementations` says what was chosen; it is logged once per model.

With `vpp` > 1 (the interleaved pipeline schedule) a rank holds `vpp` model chunks: chunk c
is virtual stage c * pp + pp_rank, with layers [s L / (pp vpp), (s + 1) L / (pp vpp)); the
embedding lives in chunk 0 of the first rank and the output layer in the last chunk of the
last rank. `build_gpt_model` is the one-chunk case (vpp = 1) and returns the GPTModel itself.
`as_chunks(model)` gives the list of chunks of either form, for code that takes both.

`recompute` (`parallel.recompute`) maps onto megatron-core's activation recomputation:
'full' is recompute_granularity='full', method 'uniform', one layer per group (each layer's
input is kept and the layer is rerun in the backward pass, through `tensor_parallel.checkpoint`,
or Transformer Engine's checkpoint with FP8); 'selective' recomputes the core attention only
(`recompute_modules=['core_attn']`); both act in training mode only. `sequence_parallel`
(`parallel.sequence_parallel`, tp > 1) is megatron's sequence parallelism: it needs Transformer
Engine's norms (megatron's local spec uses torch norms that refuse it), so without TE and CUDA
`choose_implementations` refuses it naming the package. With it the embedding scatters the
sequence over the TP ranks, the linears gather / reduce-scatter it, the output layer gathers it
back; the norm weights' gradients are partial per TP rank and `MegatronBackend._finish_grads`
sums them, rows are padded to a multiple of tp (`backend.py`), and the hidden-state log-prob
route gathers the sequence itself (`forward.py`).

`build_gpt_chunks` is four pieces: `choose_implementations` (TE or local, and the refusals),
`transformer_config` (the `TransformerConfig`), `layer_spec` (the decoder-layer spec of the
implementation) and `gpt_chunks` (this rank's GPTModels from a config and a spec).

On CPU (no CUDA) every fusion is off, weights are initialised on the CPU and the caller must
have applied `cpu_compat.apply_cpu_compat()`. Parallel state must already be initialised.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from megathink.errors import ConfigError
from megathink.models.megatron.gpt_spec import GPTSpec

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp8")
RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class Implementations:
    """Which implementations this process uses (logged once at start-up)."""

    layers: str
    """'transformer_engine' or 'local' (megatron-core's torch modules)."""
    precision: str
    cuda: bool

    def describe(self) -> str:
        device = "CUDA" if self.cuda else "CPU (gloo, compatibility layer)"
        attention = "Transformer Engine" if self.layers == "transformer_engine" else "torch SDPA (LocalCoreAttention)"
        return f"megatron layers: {self.layers}, attention: {attention}, precision: {self.precision}, device: {device}"


def have_transformer_engine() -> bool:
    return importlib.util.find_spec("transformer_engine") is not None


def choose_implementations(precision: str, *, sequence_parallel: bool = False) -> Implementations:
    """Transformer Engine layers when TE imports and CUDA is there, megatron's local spec otherwise;
    FP8 and sequence parallelism without TE are ConfigErrors naming the package and the way out."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision = {precision!r} is invalid: must be one of {', '.join(PRECISIONS)}.")
    te = have_transformer_engine() and torch.cuda.is_available()
    if precision == "fp8" and not te:
        raise ConfigError(
            "parallel.fp8 = true needs the transformer_engine package and a CUDA GPU: install "
            "megathink[gpu] on a GPU node, or set parallel.fp8=false."
        )
    if sequence_parallel and not te:
        raise ConfigError(
            "parallel.sequence_parallel = true needs the transformer_engine package and a CUDA GPU "
            "(megatron-core's sequence parallelism needs Transformer Engine norms; its local layers use torch "
            "norms that refuse it): install transformer_engine (pip install megathink[gpu]) on a GPU node, "
            "or set parallel.sequence_parallel=false."
        )
    return Implementations(layers="transformer_engine" if te else "local", precision=precision, cuda=torch.cuda.is_available())


def recompute_options(recompute: str) -> dict[str, Any]:
    """`parallel.recompute` as `TransformerConfig` fields: 'full' reruns every layer from its kept
    input (uniform, one layer per group), 'selective' reruns the core attention alone."""
    if recompute == "full":
        return dict(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1)
    if recompute == "selective":
        return dict(recompute_granularity="selective", recompute_modules=["core_attn"])
    if recompute == "none":
        return {}
    raise ConfigError(f"parallel.recompute = {recompute!r} is invalid: must be one of {', '.join(RECOMPUTE)}.")


def as_chunks(model: Any) -> list[Any]:
    """This rank's model chunks in virtual-stage order: a GPTModel is one chunk; a list or
    `torch.nn.ModuleList` of GPTModels (vpp > 1) is several."""
    if isinstance(model, (list, tuple, torch.nn.ModuleList)):
        return list(model)
    return [model]


def transformer_config(
    spec: GPTSpec, *, tp: int, pp: int, impl: Implementations, vpp: int = 1, cp: int = 1,
    recompute: str = "none", sequence_parallel: bool = False,
) -> Any:
    """The `TransformerConfig` of `spec` at this layout (no refusals here: `choose_implementations`
    makes them; `sequence_parallel` is passed through as asked)."""
    from megatron.core.transformer.transformer_config import TransformerConfig

    on_gpu = impl.cuda
    bf16 = impl.precision in ("bf16", "fp8")
    extra: dict[str, Any] = recompute_options(recompute)
    if impl.precision == "fp8":
        extra.update(fp8="hybrid", fp8_recipe="delayed")
    with warnings.catch_warnings():
        # selective recompute warns that TE's fused attention does not need it; said in the docs
        warnings.filterwarnings("ignore", message=".*core_attn.*", category=UserWarning)
        return TransformerConfig(
            num_layers=spec.num_layers,
            hidden_size=spec.hidden_size,
            ffn_hidden_size=spec.ffn_hidden_size,
            num_attention_heads=spec.num_heads,
            num_query_groups=spec.num_kv_heads,
            kv_channels=spec.head_dim,
            normalization="RMSNorm",
            layernorm_epsilon=spec.rms_norm_eps,
            gated_linear_unit=True,
            activation_func=torch.nn.functional.silu,
            add_bias_linear=False,
            add_qkv_bias=spec.qkv_bias,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            tensor_model_parallel_size=tp,
            pipeline_model_parallel_size=pp,
            context_parallel_size=cp,
            sequence_parallel=sequence_parallel,
            virtual_pipeline_model_parallel_size=vpp if vpp > 1 else None,
            params_dtype=torch.bfloat16 if bf16 else torch.float32,
            bf16=bf16,
            pipeline_dtype=torch.bfloat16 if bf16 else torch.float32,
            use_cpu_initialization=not on_gpu,
            bias_dropout_fusion=on_gpu,
            apply_rope_fusion=False,
            masked_softmax_fusion=on_gpu,
            gradient_accumulation_fusion=False,
            persist_layer_norm=False,
            **extra,
        )


def build_gpt_chunks(
    spec: GPTSpec, *, tp: int, pp: int, vpp: int = 1, cp: int = 1, precision: str = "fp32",
    recompute: str = "none", sequence_parallel: bool = False,
) -> tuple[list[Any], Implementations]:
    """(this rank's GPTModel chunks, one per virtual stage it holds; the implementations chosen).

    recompute: 'none' | 'selective' | 'full' (`parallel.recompute`); sequence_parallel: megatron's
    sequence parallelism over the TP ranks (refused without Transformer Engine and CUDA)."""
    spec.check_parallel(tp, pp, vpp)
    impl = choose_implementations(precision, sequence_parallel=sequence_parallel)
    config = transformer_config(
        spec, tp=tp, pp=pp, impl=impl, vpp=vpp, cp=cp, recompute=recompute, sequence_parallel=sequence_parallel
    )
    chunks = gpt_chunks(spec, config, layer_spec(impl), vpp=vpp, cuda=impl.cuda)
    log.info("%s%s", impl.describe(), _describe_memory_options(recompute, sequence_parallel))
    return chunks, impl


def layer_spec(impl: Implementations) -> Any:
    """megatron's decoder-layer spec: Transformer Engine's, or the local one (torch modules) with
    `LocalCoreAttention` as its core attention."""
    if impl.layers == "transformer_engine":
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_with_transformer_engine_spec

        return get_gpt_layer_with_transformer_engine_spec()
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    from megathink.models.megatron.local_attention import LocalCoreAttention

    spec = get_gpt_layer_local_spec(normalization="RMSNorm")
    # megatron's DotProductAttention refuses THD rows and cp > 1: torch SDPA that does both
    spec.submodules.self_attention.submodules.core_attention = LocalCoreAttention
    return spec


def gpt_chunks(spec: GPTSpec, config: Any, decoder_layer_spec: Any, *, vpp: int = 1, cuda: bool = False) -> list[Any]:
    """This rank's GPTModels (one per virtual stage it holds) from a `TransformerConfig` and a layer spec."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel

    chunks = []
    for chunk in range(vpp):
        vp_stage = chunk if vpp > 1 else None
        model = GPTModel(
            config,
            decoder_layer_spec,
            vocab_size=spec.padded_vocab(config.tensor_model_parallel_size),
            max_sequence_length=spec.max_position_embeddings,
            pre_process=parallel_state.is_pipeline_first_stage(ignore_virtual=vpp == 1, vp_stage=vp_stage),
            post_process=parallel_state.is_pipeline_last_stage(ignore_virtual=vpp == 1, vp_stage=vp_stage),
            share_embeddings_and_output_weights=spec.tied_embeddings,
            position_embedding_type="rope",
            rotary_base=int(spec.rope_theta) if float(spec.rope_theta).is_integer() else spec.rope_theta,
            vp_stage=vp_stage,
        )
        _params_to_model_dtype(model, config.params_dtype)
        chunks.append(model.cuda() if cuda else model)
    return chunks


def _params_to_model_dtype(model: Any, dtype: torch.dtype) -> None:
    """The local spec's norms are torch RMSNorms, built in fp32 whatever params_dtype says: cast
    every floating parameter to the model's dtype, as Transformer Engine's layers and the HF model
    have it (and as ZeRO-1's ZeroRedundancyOptimizer requires: one dtype for all parameters)."""
    for param in model.parameters():
        if param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)


def _describe_memory_options(recompute: str, sequence_parallel: bool) -> str:
    parts = [] if recompute == "none" else [f"recompute: {recompute}"]
    if sequence_parallel:
        parts.append("sequence parallel")
    return "".join(f", {part}" for part in parts)


def build_gpt_model(spec: GPTSpec, *, tp: int, pp: int, precision: str = "fp32") -> tuple[Any, Implementations]:
    """(this rank's GPTModel, the implementations chosen): one chunk per rank (no interleaving)."""
    chunks, impl = build_gpt_chunks(spec, tp=tp, pp=pp, precision=precision)
    return chunks[0], impl
