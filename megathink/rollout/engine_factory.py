"""`build_rollout_engine`: the `RolloutEngine` a run's `rollout.engine` names.

The trainer and the evaluation code call this one function, so they never name an engine class.
`sampler` is the HF backend an in-process engine samples from: the policy itself with the HF
backend (colocated, no copy), or the HF copy a Megatron run keeps for rollouts and evaluation.

`rollout.engine = "sglang"` builds an `SGLangEngine`. Its servers start on `model_dir` (the
folder the policy was loaded from: `model.path` or the stage's start folder) when that folder
holds exactly the sampler's weights; when there is none (a random model) or the tokenizer grew
the vocabulary (`bundle.vocab_grew`: the embeddings were resized, so the folder's weights differ
from the policy's), the sampler's weights are written first as weight version 0 and served from
there. `bundle` also gives the tokenizer saved with every synced weight folder. Servers the
engine launched are stopped by `close_engine(engine)` (and at exit).

Evaluations and AdaptThink's pre-sampling on SGLang engines (`evaluation.eval_engine`) pass
`load_attached=True`, so attached engines load the folder they evaluate, and may pass no sampler
at all when `model_dir` already holds the weights: nothing is built in this process then (the
model config is read from the folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from megathink.config.rollout import RolloutConfig
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.protocol import RolloutEngine

if TYPE_CHECKING:
    from megathink.data.types import TokenizerBundle
    from megathink.models.protocol import PolicyBackend


def build_rollout_engine(
    rollout: RolloutConfig, sampler: Optional[PolicyBackend], *, pad_id: int, batch_size: int, out_dir: Path,
    model_dir: Optional[str] = None, bundle: Optional[TokenizerBundle] = None, load_attached: bool = False,
) -> RolloutEngine:
    """The engine for `rollout.engine`; `out_dir` is the stage folder (engines keep their files there).

    sampler: the HF backend to sample from (local) or to write the start weights from (sglang);
    None only with SGLang engines and a `model_dir` that `serves_folder_as_is`."""
    if rollout.engine == "local":
        if sampler is None:
            raise ValueError("build_rollout_engine: the local engine needs a sampler (the HF backend to sample from)")
        return LocalEngine(sampler, pad_id=pad_id, batch_size=batch_size)
    from megathink.rollout.sglang_engine import SGLangEngine

    usable = serves_folder_as_is(model_dir, bundle)
    if sampler is None and not usable:
        raise ValueError(f"build_rollout_engine: no sampler and model_dir {model_dir!r} cannot be served as is")
    hf_config = sampler.model.config if sampler is not None else _folder_config(model_dir)  # type: ignore[attr-defined]
    return SGLangEngine(
        rollout.sglang, work_dir=Path(out_dir), hf_config=hf_config,
        tokenizer=bundle.tokenizer if bundle is not None else None, serve_dir=model_dir if usable else None,
        initial_weights=None if usable else sampler, batch_size=batch_size, load_attached=load_attached,
    )


def serves_folder_as_is(model_dir: Optional[str], bundle: Optional[TokenizerBundle]) -> bool:
    """Whether SGLang engines can start on `model_dir` itself: a HF folder (config.json) whose weights
    are the policy's (the tokenizer did not grow the vocabulary, which resizes the embeddings)."""
    return model_dir is not None and Path(model_dir, "config.json").is_file() and not (bundle is not None and bundle.vocab_grew)


def _folder_config(model_dir: Optional[str]) -> object:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(model_dir))


def close_engine(engine: RolloutEngine) -> None:
    """Release what an engine holds (the SGLang engine's launched servers); nothing for the local engine."""
    close = getattr(engine, "close", None)
    if close is not None:
        close()
