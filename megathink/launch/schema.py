"""Registers the typed config schema with Hydra's ConfigStore.

The primary configs in `hydra_conf/` list `megathink_schema` first in their defaults, so every
group file and every command-line override is merged onto the `RunConfig` dataclass: a key that
the dataclass does not have is rejected by Hydra with the full dotted name, and a value of the
wrong type is rejected by OmegaConf before any library code runs.

The `algorithm` node of the schema is the base `AlgorithmConfig`; every registered method's
config (megathink.methods) is stored as `schema/algorithm/<name>`, and each
`hydra_conf/algorithm/<name>.yaml` lists it first (`/schema/algorithm@_here_: <name>`), so
selecting `algorithm=<name>` makes the node that method's dataclass (its own fields, typed; a
key of another method is refused).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from megathink.config import ConfigError, RunConfig
from megathink.config.algorithm import (
    AlgorithmConfig,
    algorithm_config_class,
    registered_algorithms,
)

SCHEMA_NAME = "megathink_schema"


ALGORITHM_SCHEMA_GROUP = "schema/algorithm"
"""ConfigStore group of the method configs (out of the `algorithm` group, so `--help` lists only the
yaml options); `hydra_conf/algorithm/<name>.yaml` lists `/schema/algorithm@_here_: <name>` first."""


def register_schema() -> None:
    from megathink.launch.config_groups import register_help_resolver

    register_help_resolver()
    store = ConfigStore.instance()
    schema = OmegaConf.structured(RunConfig)
    schema.algorithm = OmegaConf.structured(AlgorithmConfig)  # the group file picks the method's subclass
    # free-form mappings: `data.effort_levels={low:512,high:8192}` adds keys without `++`
    for mapping in (schema.data.effort_levels, schema.tokenizer.chat_template_kwargs):
        OmegaConf.set_struct(mapping, False)
    store.store(name=SCHEMA_NAME, node=schema)
    for name in registered_algorithms():
        store.store(group=ALGORITHM_SCHEMA_GROUP, name=name, node=algorithm_config_class(name))


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Resolve interpolations and build the validated dataclasses (raises ConfigError)."""
    run_cfg = OmegaConf.to_object(cfg)
    if not isinstance(run_cfg, RunConfig):
        raise ConfigError(
            f"the composed config is a {type(run_cfg).__name__}, not a RunConfig: the primary config "
            f"must list '{SCHEMA_NAME}' first in its defaults."
        )
    return run_cfg
