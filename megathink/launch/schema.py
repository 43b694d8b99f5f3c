"""Registers the typed config schema with Hydra's ConfigStore.

The primary configs in `hydra_conf/` list `megathink_schema` first in their defaults, so every
group file and every command-line override is merged onto the `RunConfig` dataclass: a key that
the dataclass does not have is rejected by Hydra with the full dotted name, and a value of the
wrong type is rejected by OmegaConf before any library code runs.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from megathink.config import ConfigError, RunConfig

SCHEMA_NAME = "megathink_schema"


def register_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=RunConfig)


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Resolve interpolations and build the validated dataclasses (raises ConfigError)."""
    run_cfg = OmegaConf.to_object(cfg)
    if not isinstance(run_cfg, RunConfig):
        raise ConfigError(
            f"the composed config is a {type(run_cfg).__name__}, not a RunConfig: the primary config "
            f"must list '{SCHEMA_NAME}' first in its defaults."
        )
    return run_cfg
