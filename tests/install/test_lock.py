"""The lock (constraints.txt) pins what this environment runs, and setup.py's ranges agree with it.

`make test` installs with `-c constraints.txt`; these checks fail when a dependency was added or
upgraded without `make lock`, when the lock was edited by hand into a range, or when setup.py's
lower bounds fall behind what the lock tested.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")
LOCKED_EXTRAS = ("test", "megatron")
CLUSTER_DROPS = re.compile(r"^(torch|triton|nvidia-[a-z0-9-]+)$")


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"{path.name}:{number}: {line!r} is not an exact name==version pin"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = match["version"]
    return pins


def setup_requirements() -> dict[str, list[Requirement]]:
    """install_requires and extras of setup.py, read without running it."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.targets[0], ast.Name)
    }

    def strings(node: ast.AST) -> list[str]:
        return [constants[item.id] if isinstance(item, ast.Name) else item.value for item in node.elts]

    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    groups = {"install_requires": [Requirement(text) for text in strings(keywords["install_requires"])]}
    extras = keywords["extras_require"]
    for key, value in zip(extras.keys, extras.values):
        groups[key.value] = [Requirement(text) for text in strings(value)]
    return groups


def applies(requirement: Requirement, extras: tuple[str, ...] = ("",)) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**default_environment(), "extra": extra}) for extra in extras)


def dependency_closure() -> dict[str, str]:
    """Installed name -> version of megathink[test,megatron]'s whole dependency tree."""
    seen: dict[str, str] = {}
    todo = [(req, ("",)) for group in ("install_requires", *LOCKED_EXTRAS) for req in setup_requirements()[group]]
    while todo:
        requirement, _ = todo.pop()
        if not applies(requirement):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        distribution = importlib.metadata.distribution(requirement.name)
        seen[name] = distribution.version
        extras = tuple(requirement.extras) or ("",)
        for text in distribution.requires or []:
            child = Requirement(text)
            if applies(child, extras):
                todo.append((child, extras))
    return seen


def test_lock_is_exact_pins_only():
    pins = read_pins(REPO / "constraints.txt")
    assert len(pins) > 50  # the whole tree, not a handful of hand-written lines
    assert pins["torch"].startswith("2.13.0")


def test_everything_megathink_needs_here_is_pinned_at_the_installed_version():
    pins = read_pins(REPO / "constraints.txt")
    closure = dependency_closure()
    assert {"torch", "transformers", "megatron-core", "pytest", "kernels"} <= set(closure)
    missing = sorted(name for name in closure if name not in pins)
    assert not missing, f"installed but not in the lock (run `make lock`): {missing}"
    drift = {name: (version, pins[name]) for name, version in closure.items() if Version(version) != Version(pins[name])}
    assert not drift, f"installed version != locked version (reinstall with -c constraints.txt): {drift}"


def test_setup_ranges_admit_the_lock_and_start_at_it():
    pins = read_pins(REPO / "constraints.txt")
    for group in ("install_requires", *LOCKED_EXTRAS):
        for requirement in setup_requirements()[group]:
            if not applies(requirement):
                continue
            locked = Version(pins[canonicalize_name(requirement.name)])
            assert requirement.specifier.contains(locked, prereleases=True), f"{requirement} excludes the locked {locked}"
            floors = [Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", "==")]
            assert floors, f"setup.py: {requirement} needs a lower bound (the locked {locked})"
            assert max(floors) >= Version(locked.base_version), (
                f"setup.py: raise the lower bound of {requirement} to the locked {locked}"
            )


def test_lock_inputs_hold_in_the_lock():
    pins = read_pins(REPO / "constraints.txt")
    for line in (REPO / "constraints.in").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            locked = Version(pins[canonicalize_name(requirement.name)])
            assert requirement.specifier.contains(locked, prereleases=True), f"constraints.in: {line} vs {locked}"


def test_cluster_lock_is_the_lock_minus_what_a_cuda_torch_brings():
    pins = read_pins(REPO / "constraints.txt")
    cluster = read_pins(REPO / "constraints-cluster.txt")
    assert cluster == {name: version for name, version in pins.items() if not CLUSTER_DROPS.match(name)}
    assert "torch" not in cluster and "transformers" in cluster
