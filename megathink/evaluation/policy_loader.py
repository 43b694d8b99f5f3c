"""Load the policy `megathink eval` evaluates from `eval.model_dir`, with its own tokenizer.

Two kinds of directory are accepted (the layout `trainer.sft` writes):

- a HF model directory (`config.json` + weights + tokenizer, e.g. `<run>/sft/hf`): the model
  and the tokenizer are read from it. When its parent folder is a stage folder (it holds
  `resolved_config.yaml`), the prompt settings (chat template, instruction, control tokens)
  come from that stage's resolved tokenizer config, so prompts render as in training;
  otherwise from the command's `tokenizer` section.
- a step checkpoint directory (`<stage>/checkpoints/step_NNNNNNNN` with `model.safetensors`):
  the model and tokenizer configs come from `<stage>/resolved_config.yaml`. When the stage
  has `hf/`, the tokenizer and the model are read from there; else the tokenizer is rebuilt
  from the resolved tokenizer config and the model from the resolved model config. The step's
  weights are then loaded over the model.

In both cases the parameter dtype and attention kernel are the command's `model.dtype` and
`model.attn_implementation` (an inference choice); everything else comes from the checkpoint.
With `weights_only_if_needed=True` (evaluation on SGLang engines, which read a HF folder
themselves) a HF directory whose tokenizer did not grow the vocabulary is not built in this
process at all (`backend` is None); a step checkpoint is always built, since its weights must
first be written as a HF folder for the engines.
The file names mirror `trainer.checkpoint` / `trainer.sft` (evaluation sits below the trainer
and does not import it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, TypeVar

import yaml
from safetensors.torch import load_model

from megathink.config.model import ModelConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.data.types import TokenizerBundle
from megathink.errors import ConfigError, MissingPathError
from megathink.models.hf_backend import HFBackend, build_hf_backend
from megathink.run_layout import CHECKPOINTS_DIR, HF_DIR, RESOLVED_CONFIG, STEP_WEIGHTS

FIELD = "eval.model_dir"
_EXPECTED = (
    "give a HF model directory (with config.json, e.g. <run>/sft/hf) or a step checkpoint directory "
    "(<stage>/checkpoints/step_NNNNNNNN, with model.safetensors)"
)

_Section = TypeVar("_Section")


@dataclass
class LoadedPolicy:
    """The model to evaluate, its tokenizer bundle and the tokenizer config prompts are rendered with."""

    backend: Optional[HFBackend]
    """None when the model was not built (`weights_only_if_needed` and a HF folder served as is)."""
    bundle: TokenizerBundle
    tok_cfg: TokenizerConfig
    kind: str
    """'hf' or 'checkpoint'."""
    path: Path


def load_policy(
    model_dir: Optional[str], *, tokenizer: TokenizerConfig, model: ModelConfig, device: str, seed: int,
    weights_only_if_needed: bool = False,
) -> LoadedPolicy:
    """The policy at `model_dir` on `device`; `tokenizer`/`model` are the command's own sections."""
    if not model_dir:
        raise ConfigError(f"{FIELD} = {model_dir!r} is invalid: {_EXPECTED}.")
    path = Path(model_dir)
    if not path.is_dir():
        raise MissingPathError(f"{FIELD} = {model_dir!r} is not a directory: {_EXPECTED}.")
    inference = dict(dtype=model.dtype, attn_implementation=model.attn_implementation)
    if (path / "config.json").is_file():
        return _load_hf_dir(path, tokenizer, replace(model, path=str(path), **inference), device, seed, weights_only_if_needed)
    if (path / STEP_WEIGHTS).is_file():
        return _load_step_checkpoint(path, inference, device, seed)
    raise MissingPathError(
        f"{FIELD} = {model_dir!r} holds neither config.json nor {STEP_WEIGHTS}: {_EXPECTED}."
    )


def _load_hf_dir(
    path: Path, tokenizer: TokenizerConfig, model_cfg: ModelConfig, device: str, seed: int, lazy: bool
) -> LoadedPolicy:
    resolved = path.parent / RESOLVED_CONFIG  # present when `path` is a stage's hf/
    base_tok = tokenizer
    if resolved.is_file():
        base_tok = _section(_read_stage_config(resolved), "tokenizer", TokenizerConfig, resolved)
    tok_cfg = replace(base_tok, kind="pretrained", path=str(path))
    bundle = load_tokenizer(tok_cfg)
    backend = None if lazy and not bundle.vocab_grew else build_hf_backend(model_cfg, bundle, device=device, seed=seed)
    return LoadedPolicy(backend, bundle, tok_cfg, "hf", path)


def _load_step_checkpoint(path: Path, inference: dict[str, Any], device: str, seed: int) -> LoadedPolicy:
    stage_dir = path.parent.parent
    resolved = stage_dir / RESOLVED_CONFIG
    if path.parent.name != CHECKPOINTS_DIR or not resolved.is_file():
        raise MissingPathError(
            f"{FIELD} = {str(path)!r} looks like a step checkpoint but {resolved} does not exist: a step "
            f"checkpoint must sit in <stage>/{CHECKPOINTS_DIR}/ next to the stage's {RESOLVED_CONFIG} "
            "(the model and tokenizer settings are read from it); or give the stage's hf/ directory."
        )
    stage = _read_stage_config(resolved)
    tok_cfg = _section(stage, "tokenizer", TokenizerConfig, resolved)
    model_cfg = _section(stage, "model", ModelConfig, resolved)
    hf_dir = stage_dir / HF_DIR
    if (hf_dir / "config.json").is_file():
        tok_cfg = replace(tok_cfg, kind="pretrained", path=str(hf_dir))
        model_cfg = replace(model_cfg, path=str(hf_dir))
    model_cfg = replace(model_cfg, **inference)
    bundle = load_tokenizer(tok_cfg)
    backend = build_hf_backend(model_cfg, bundle, device=device, seed=seed)
    try:
        load_model(backend.model, str(path / STEP_WEIGHTS), device=str(backend.device))
    except RuntimeError as err:  # missing/unexpected keys or shape mismatches
        raise ConfigError(
            f"{FIELD} = {str(path)!r}: the weights in {STEP_WEIGHTS} do not fit the model described by "
            f"{resolved} ({str(err).splitlines()[0]}): was the resolved config edited after training?"
        ) from err
    return LoadedPolicy(backend, bundle, tok_cfg, "checkpoint", path)


def _read_stage_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{FIELD}: {path} is not valid YAML ({err}); it should be the file megathink wrote.") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{FIELD}: {path} does not hold a config mapping; it should be the file megathink wrote.")
    return data


def _section(stage: dict[str, Any], name: str, cls: type[_Section], source: Path) -> _Section:
    """Section `name` of a resolved run config, rebuilt as `cls` (validated again)."""
    values = stage.get(name)
    if not isinstance(values, dict):
        raise ConfigError(f"{FIELD}: {source} has no '{name}' section; it should be the file megathink wrote.")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{FIELD}: {source} has {name}.{unknown[0]}, which this version of megathink does not know: "
            "the checkpoint was written by another version."
        )
    return cls(**values)
