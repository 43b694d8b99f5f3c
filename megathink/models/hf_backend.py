"""`HFBackend`: the single-process `PolicyBackend` around a `transformers` causal LM.

`build_hf_backend` either builds a random Qwen2/Llama model from `ModelConfig` (the toy task
and the tests; nothing is downloaded) or loads a local checkpoint directory (`model.path`).
Only the existing transformers classes are used. When control tokens were added to the
tokenizer (`tokenizer.control_tokens="add"`), the embedding matrix grows to the tokenizer size
and the new rows start at the mean of the existing ones (transformers' own `mean_resizing`
samples around the mean instead; megathink keeps the plain mean so the new tokens start
neutral and deterministic). The vocabulary never shrinks: Qwen2 checkpoints carry more
embedding rows than their tokenizer has, and added tokens that land inside those spare rows
are re-initialised to the mean the same way.

`logprobs` runs the model on `[B, T]` ids with position ids taken from the attention mask, so
left-padded (RL rollouts) and right-padded (SFT) batches both see positions 0, 1, 2, ... on
their real tokens, then scores every next token the way `kernels.logprob` says
(`build_hf_backend(..., kernels=)`): 'fused' and 'chunked' run the decoder body only
(`model.base_model` -> hidden states `[B, T, H]`), keep the positions that score a token, and
call `megathink.kernels.linear_logprob` with the lm_head weight (tied or not), so the
`[B, T, V]` logits never exist; 'naive' takes the model's full logits and
`megathink.kernels.token_logprobs` / `token_entropy`. Entropies (DeGRPO's entropy bonus) come
from the same op. All three apply the temperature as `z / T` to the same logits; an lm_head
with a bias (none in Qwen2 or Llama) is refused by the hidden-state paths.

`build_hf_backend(..., recompute='full')` (`parallel.recompute`) turns on transformers'
activation (gradient) checkpointing of the decoder layers, non-reentrant: in a training forward
each decoder layer keeps only its input `[B, T, H]` (and the shared RoPE cos / sin and mask it
is called with) and reruns itself in the backward pass; embeddings, the final norm and the
log-prob head are not checkpointed. transformers applies it only with gradients enabled in
training mode, so evaluation, scoring under `no_grad` and generation run the plain layers.
Same losses and gradients either way, on every `kernels.logprob` route (the hidden-state routes
call the checkpointed decoder body too). 'selective' is a megatron-only mode (refused here, as
in the config).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

import torch

from megathink.errors import ConfigError, DataError, ExistingOutputError, MissingPathError
from megathink.config.kernels import KernelsConfig
from megathink.config.model import ModelConfig
from megathink.data.types import TokenizerBundle
from megathink.models.module_backend import ModuleBackend
from megathink.kernels import fused_unavailable_reason, linear_logprob, token_entropy, token_logprobs

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("qwen2", "llama")
HF_MARKER = ".megathink-hf.json"
"""File save_hf writes into every HF directory it creates; only such directories are replaced."""

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFBackend(ModuleBackend):
    """A transformers causal LM on one device, implementing `PolicyBackend`."""

    def __init__(
        self, model: torch.nn.Module, device: torch.device, *, logprob_impl: str = "chunked", chunk_tokens: int = 0
    ) -> None:
        super().__init__(model, device)
        self.logprob_impl = logprob_impl  # 'fused' | 'chunked' | 'naive' (KernelsConfig.logprob)
        self.chunk_tokens = chunk_tokens  # tokens per lm_head chunk; 0: the implementation's default

    @property
    def recompute(self) -> str:
        """'full' when the decoder layers are checkpointed (`enable_recompute`), else 'none'."""
        return "full" if any(getattr(m, "gradient_checkpointing", False) for m in self.model.modules()) else "none"

    def logprobs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, temperature: float = 1.0
    ) -> torch.Tensor:
        """[B, T] ids and mask -> float32 [B, T]: column t = log p(ids[:, t] | ids[:, :t]).

        Column 0, padded positions and the first real token of each row are 0.
        """
        return self.logprobs_and_entropy(input_ids, attention_mask, temperature=temperature, entropy=False)[0]

    def logprobs_and_entropy(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, temperature: float = 1.0, entropy: bool = True
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """`logprobs` plus, when asked, the entropy [B, T] of the distribution that scored each
        token (aligned the same way: column t is the entropy at position t-1; 0 where unscored)."""
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # [B, T]
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        # Token t is scored only when it and the position predicting it (t-1) are both real, so
        # the first real token of a left-padded row gets 0 like column 0 does.
        real = attention_mask != 0  # [B, T]
        scored_mask = real[:, 1:] & real[:, :-1]  # [B, T-1]
        targets = input_ids[:, 1:].masked_fill(~scored_mask, -1)  # [B, T-1]
        if self.logprob_impl == "naive":
            logits = self.model(**inputs).logits  # [B, T, V]
            scored = token_logprobs(logits[:, :-1], targets, temperature=temperature)  # [B, T-1]
            ent = token_entropy(logits[:, :-1], temperature=temperature) * scored_mask if entropy else None
        else:
            hidden = self.model.base_model(**inputs).last_hidden_state  # [B, T, H]
            next_targets = torch.nn.functional.pad(targets, (0, 1), value=-1)  # [B, T]: position t predicts t+1
            scored, ent = self._score_hidden(hidden, next_targets, temperature, entropy)  # [B, T] each
            scored, ent = scored[:, :-1], None if ent is None else ent[:, :-1]  # [B, T-1]
        logp = torch.nn.functional.pad(scored, (1, 0))  # [B, T]
        return logp, None if ent is None else torch.nn.functional.pad(ent, (1, 0))

    def _score_hidden(
        self, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, entropy: bool
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """hidden [B, T, H] and targets [B, T] (< 0: unscored) -> log-probs (and entropies)
        [B, T] through `linear_logprob`, computed on the scored positions only."""
        head = self.model.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise ConfigError(
                f"kernels.logprob = {self.logprob_impl!r} needs an lm_head without bias; this model's has one: "
                "use kernels.logprob=naive."
            )
        flat_targets = targets.reshape(-1)  # [N]
        rows = (flat_targets >= 0).nonzero().squeeze(1)  # [n]
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)  # [n, H] (the reshape is a view)
        out = linear_logprob(
            picked, head.weight, flat_targets.index_select(0, rows), temperature=temperature,
            return_entropy=entropy, impl=self.logprob_impl, chunk_tokens=self.chunk_tokens or None,
        )
        logp, ent = out if entropy else (out, None)  # [n] each

        def scatter(values: torch.Tensor) -> torch.Tensor:
            full = values.new_zeros(flat_targets.shape[0]).index_copy(0, rows, values)  # [N]
            return full.view(targets.shape)

        return scatter(logp), None if ent is None else scatter(ent)

    def move_to(self, device: torch.device) -> None:
        """Put the model (and the inputs of later calls) on `device`."""
        self.model.to(device)
        self.device = device

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load full HF-named weights; a tied model's `lm_head.weight` may be absent (exporters
        write the shared matrix once). Any other missing or unexpected tensor is an error naming it."""
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if getattr(self.model.config, "tie_word_embeddings", False):
            missing = [name for name in missing if name != "lm_head.weight"]
        if missing or unexpected:
            name = (missing or unexpected)[0]
            raise DataError(
                f"weights for the HF model: tensor {name!r} is {'missing' if missing else 'unexpected'} "
                f"({len(missing)} missing, {len(unexpected)} unexpected): the weights come from another architecture."
            )

    def save_hf(self, directory: Path, tokenizer: Any) -> Path:
        """Write safetensors weights, config and tokenizer to `directory` atomically.

        Everything is written to a hidden temporary sibling first and renamed into place. An
        existing `directory` is replaced only when it is empty or was written by megathink
        (it holds the marker file); anything else is refused, never deleted.
        """
        directory = Path(directory)
        _check_replaceable(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        stamp = f"{os.getpid()}-{time.time_ns()}"
        tmp = directory.parent / f".{directory.name}.tmp-{stamp}"
        try:
            with _quiet_progress_bars():
                self.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / HF_MARKER).write_text(json.dumps({"written_by": "megathink", "time": time.time()}) + "\n")
            _check_replaceable(directory)
            old = directory.parent / f".{directory.name}.old-{stamp}"
            if directory.exists():
                os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is an error naming the field."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device = 'cuda' but no CUDA device is available: use trainer.device=cpu or auto.")
    return torch.device(device)


def check_logprob_kernels(kernels: KernelsConfig, device: torch.device) -> None:
    """Refuse kernels.logprob='fused' where the Triton kernels cannot run (no fallback)."""
    if kernels.logprob != "fused":
        return
    reason = fused_unavailable_reason(device)
    if reason is not None:
        raise ConfigError(f"kernels.logprob = 'fused' cannot run here: {reason}. Use kernels.logprob=chunked.")


def enable_recompute(model: torch.nn.Module, recompute: str) -> None:
    """`parallel.recompute` on a transformers model: 'full' checkpoints every decoder layer
    (non-reentrant), 'none' leaves it; 'selective' is refused (megatron backend only)."""
    if recompute == "none":
        return
    if recompute != "full":
        raise ConfigError(
            f"parallel.recompute = {recompute!r} is invalid with the HF backend: it recomputes whole decoder "
            "layers (gradient checkpointing); use parallel.recompute=full or none."
        )
    # transformers >= 5.25 names it activation_checkpointing_enable (gradient_checkpointing_enable
    # is its deprecated alias); the first argument is the torch.utils.checkpoint kwargs either way
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable({"use_reentrant": False})
    # only the reentrant form needs inputs that require grad: drop the embedding-output hook
    # transformers adds for it, so recompute changes nothing outside the decoder layers
    model.disable_input_require_grads()


def build_hf_backend(
    model_cfg: ModelConfig,
    bundle: TokenizerBundle,
    *,
    device: str,
    seed: int,
    kernels: Optional[KernelsConfig] = None,
    recompute: str = "none",
) -> HFBackend:
    """A random model (model.path unset) or a local checkpoint, sized to the tokenizer, on `device`.

    kernels: the log-prob implementation (default `KernelsConfig()`: chunked); 'fused' where it
    cannot run (no triton, no CUDA) is a ConfigError naming what is missing. recompute:
    `parallel.recompute` ('none' or 'full': gradient checkpointing of the decoder layers).
    """
    torch_device = resolve_device(device)
    kernels = kernels if kernels is not None else KernelsConfig()
    check_logprob_kernels(kernels, torch_device)
    dtype = _DTYPES[model_cfg.dtype]
    if model_cfg.path is None:
        model = _random_model(model_cfg, bundle, seed)
        what = f"random {model_cfg.arch}"
    else:
        model = _pretrained_model(model_cfg, dtype)
        what = f"{model.config.model_type} from {model_cfg.path}"
        _fit_vocab(model, bundle, model_cfg)
    model.to(device=torch_device, dtype=dtype)
    enable_recompute(model, recompute)
    vocab = model.get_input_embeddings().num_embeddings
    impl = kernels.logprob_for(vocab)
    if impl == "naive" and vocab > kernels.naive_max_vocab:
        log.warning(
            "kernels.logprob = 'naive' stores fp32 [tokens, %d] logits in every training pass; 'auto' or "
            "'chunked' computes the same log-probs without them", vocab,
        )
    backend = HFBackend(model, torch_device, logprob_impl=impl, chunk_tokens=kernels.chunk_tokens)
    log.info(
        "built %s model: %.2fM parameters, vocab %d, %s on %s%s",
        what, backend.num_parameters() / 1e6, model.get_input_embeddings().num_embeddings, model_cfg.dtype, torch_device,
        ", decoder layers recomputed in backward" if recompute == "full" else "",
    )
    return backend


def _random_model(cfg: ModelConfig, bundle: TokenizerBundle, seed: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common: dict[str, Any] = dict(
        vocab_size=bundle.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=bundle.tokenizer.bos_token_id,
        eos_token_id=bundle.eos_id,
        pad_token_id=bundle.pad_id,
        attention_dropout=0.0,
    )
    if cfg.arch == "qwen2":  # Qwen2 keeps its q/k/v biases (hard-wired in the class)
        config, model_cls = Qwen2Config(**common), Qwen2ForCausalLM
    else:
        config, model_cls = LlamaConfig(attention_bias=False, mlp_bias=False, **common), LlamaForCausalLM
    config._attn_implementation = cfg.attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(config)


def _pretrained_model(cfg: ModelConfig, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    path = Path(str(cfg.path))
    check_hf_model_dir(path, "model.path", unset_hint=", or unset it to build a random model")
    return AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, dtype=dtype, attn_implementation=cfg.attn_implementation
    )


def check_hf_model_dir(path: Path, field: str, *, unset_hint: str = "") -> Any:
    """The `config.json` of a local Qwen2 / Llama checkpoint folder, or an error naming `field`."""
    from transformers import AutoConfig

    if not path.is_dir():
        raise MissingPathError(
            f"{field} = {str(path)!r} is not a directory: point it at a local HF checkpoint "
            f"(config.json + *.safetensors){unset_hint}."
        )
    if not (path / "config.json").is_file():
        raise MissingPathError(
            f"{field} = {str(path)!r} has no config.json: it is not a HF checkpoint directory; "
            "point it at the folder written by save_pretrained."
        )
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"{field} = {str(path)!r} holds a {config.model_type!r} model "
            f"({', '.join(config.architectures or [])}); megathink supports the Qwen2 and Llama families "
            f"(model_type {' or '.join(repr(t) for t in SUPPORTED_MODEL_TYPES)})."
        )
    return config


def _fit_vocab(model: Any, bundle: TokenizerBundle, cfg: ModelConfig) -> None:
    """Grow the embeddings to the tokenizer (new rows = mean row), or fail on a foreign tokenizer."""
    rows = model.get_input_embeddings().num_embeddings
    if bundle.vocab_size > rows and not bundle.vocab_grew:
        raise ConfigError(
            f"the tokenizer has {bundle.vocab_size} tokens but the model at model.path = {cfg.path!r} has only "
            f"{rows} embedding rows, and no control tokens were added: the tokenizer belongs to another model. "
            "Point tokenizer.path at the model's own tokenizer (or leave it unset to use model.path)."
        )
    if bundle.vocab_size > rows:
        model.resize_token_embeddings(bundle.vocab_size, mean_resizing=False)
        new_ids = list(range(rows, bundle.vocab_size))
    elif bundle.vocab_grew:
        new_ids = _added_control_ids(bundle)
    else:
        return
    if not new_ids:
        return
    _set_rows_to_mean(model, new_ids, first_new=min(new_ids))
    log.info("initialised %d new embedding rows (ids %d..%d) to the mean embedding", len(new_ids), min(new_ids), max(new_ids))


def _added_control_ids(bundle: TokenizerBundle) -> list[int]:
    """Control-token ids appended by control_tokens='add': the run of control ids at the top of the vocabulary."""
    control = {bundle.control.short, bundle.control.think, bundle.control.end_think}
    ids, top = [], bundle.vocab_size - 1
    while top in control:
        ids.append(top)
        top -= 1
    return ids


@torch.no_grad()
def _set_rows_to_mean(model: Any, ids: list[int], *, first_new: int) -> None:
    index = torch.tensor(ids, dtype=torch.long)
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not matrices[0]:
        matrices.append(output.weight)
    for weight in matrices:  # [V, H]
        mean = weight[:first_new].float().mean(dim=0)  # [H]
        weight[index.to(weight.device)] = mean.to(weight.dtype)


def _check_replaceable(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or (any(directory.iterdir()) and not (directory / HF_MARKER).is_file())):
        raise ExistingOutputError(
            f"{directory} exists and was not written by megathink (no {HF_MARKER}): refusing to replace it. "
            "Move it away or choose another output_dir."
        )


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """transformers draws a progress bar per shard write; keep the run's console readable."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
