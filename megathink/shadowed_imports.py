"""Keep the repository's top-level source folders from shadowing installed packages.

`kernels/` and `hydra_conf/` sit at the top of the repository (where the project's layout
wants them) but are installed only as `megathink.kernels` and `megathink.hydra_conf`
(setup.py's `package_dir`). Whenever the repository root is on `sys.path` (`python -c`,
`python -m ...` and `python -m pytest` started from the root, a script that inserts the root),
Python would find them as top-level packages first: `import kernels` would load the
repository's folder instead of PyPI's `kernels` (HF's kernel hub, which transformers imports
when a model module loads).

Each of those folders' `__init__.py` checks the name it is imported under. Under its
`megathink.` name it is the package. Under its bare top-level name it calls
`hand_over_to_installed`, which loads the package of that name from the rest of `sys.path`
(every entry except the repository root) and puts it in `sys.modules` in the folder's place, or
raises `ModuleNotFoundError` when no other package of that name exists. So `import kernels`
never returns the repository's folder, whatever the working directory and however Python was
started. The path lookup before the import still finds the folder (`find_spec` from the root
names its `__init__.py`): docs/ARCHITECTURE.md ("Import layout") gives that limit and why this
mechanism was chosen.

Standard library only: this runs during another package's import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def hand_over_to_installed(name: str, init_file: str) -> None:
    """Replace the repository folder imported as top-level `name` by the installed package.

    `init_file` is the folder's `__init__.py`. Looks `name` up on every `sys.path` entry but the
    folder's parent (the repository root), executes what it finds as `sys.modules[name]` (the
    import system returns that module to the importer), or raises `ModuleNotFoundError` naming
    the `megathink.` import to use instead. A namespace folder of the same name elsewhere (a
    tests sub-folder, say) does not count as a package.
    """
    repository_root = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(init_file))))
    search_path = [entry for entry in sys.path if _real_dir(entry) != repository_root]
    spec = importlib.machinery.PathFinder.find_spec(name, search_path)
    if spec is None or spec.loader is None or spec.origin in (None, "namespace"):
        raise ModuleNotFoundError(
            f"No module named {name!r}: the repository folder {name}/ is megathink's own "
            f"(import it as megathink.{name}), and no other package named {name!r} is installed.",
            name=name,
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def _real_dir(entry: str) -> str:
    return os.path.realpath(os.path.abspath(entry or os.curdir))


__all__ = ["hand_over_to_installed"]
