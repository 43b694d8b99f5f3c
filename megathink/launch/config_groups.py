"""The config groups shipped in hydra_conf/ and their options, for `--help` texts.

`megathink --help` and `megathink <command> --help` list the groups a user picks options from
(`experiment=...`, `algorithm=...`): the sub-folders of hydra_conf/, without Hydra's own
`hydra/` and without the schema nodes megathink stores in Hydra's ConfigStore (the method
configs under `schema/algorithm`, which the `algorithm/<name>.yaml` files extend). Hydra's own
`$APP_CONFIG_GROUPS` would list those too, so the commands' help template calls the
`megathink_config_groups` resolver registered here instead.

`unknown_group_option(overrides)` catches a mistyped option before Hydra runs (`experiment=degrpo_7b`
for `thinkless_degrpo_7b`): the CLI exits 2 naming the group and listing its options, instead of
Hydra's stack trace, or, for an optional group, silently running without it.
"""

from __future__ import annotations

from importlib import resources

from omegaconf import OmegaConf

CONFIG_PACKAGE = "megathink.hydra_conf"
RESOLVER = "megathink_config_groups"


def config_groups() -> list[str]:
    """Config groups shipped in hydra_conf/ (its sub-folders; hydra/ holds Hydra's own, e.g. hydra/launcher)."""
    root = resources.files(CONFIG_PACKAGE)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("__") and p.name != "hydra")


def group_options(group: str) -> list[str]:
    folder = resources.files(CONFIG_PACKAGE).joinpath(group)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def unknown_group_option(overrides: list[str]) -> str | None:
    """The error for the first `group=option` (or `group@package=option`) override whose option
    the group does not have; None when every one is known. Sweeps (`a,b`) are checked per value."""
    groups = set(config_groups())
    for override in overrides:
        if "=" not in override or override.startswith(("-", "+", "~", "hydra")):
            continue
        key, value = override.split("=", 1)
        group = key.split("@", 1)[0]
        if group not in groups or value in ("null", ""):
            continue
        options = group_options(group)
        for choice in value.split(","):
            if choice not in options:
                return (
                    f"{key}={value}: {choice!r} is not an option of the {group} group; the options are "
                    + ", ".join(options) + "."
                )
    return None


def groups_text() -> str:
    """One `group: option, option` line per group."""
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in config_groups())


def register_help_resolver() -> None:
    """`${megathink_config_groups:}` in a help template: `groups_text()`."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, groups_text)


__all__ = [
    "CONFIG_PACKAGE", "config_groups", "group_options", "groups_text", "register_help_resolver", "unknown_group_option",
]
