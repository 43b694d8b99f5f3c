"""RL methods, one module each (docs/ARCHITECTURE.md, "RL methods").

Every module of this package is imported here, so a method module registers its config
(`config.register_algorithm_config`) and its `RLMethod` (`register_method`) just by existing:
adding a method touches no other file but its `hydra_conf/algorithm/<name>.yaml` and its tests.

Built in: `grpo` (vanilla GRPO), `degrpo` (Thinkless), `adaptthink` (AdaptThink).
"""

import importlib
import pkgutil

from megathink.methods.base import (
    MethodContext,
    RLMethod,
    Rollouts,
    build_method,
    method_class,
    register_method,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MethodContext", "RLMethod", "Rollouts", "build_method", "method_class", "register_method"]
