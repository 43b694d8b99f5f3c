"""The repository's top-level folders never shadow installed packages, however Python starts.

Every check runs a fresh Python in a subprocess with the repository root as its working
directory, as a user's `python -c`, `python -m pytest`, `python benchmarks/x.py` or
`megathink convert` started from the root would: the root is then on `sys.path`, ahead of
site-packages. Before megathink/shadowed_imports.py, building any transformers model this way
failed (`cannot import name 'CUDAProperties' from 'kernels'`).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "benchmarks").glob("*.py")) + sorted((REPO / "examples").glob("*.py"))

BUILD_QWEN2 = textwrap.dedent(
    """
    import kernels, torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    import megathink.kernels

    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    logits = Qwen2ForCausalLM(config)(input_ids=torch.arange(8)[None]).logits
    assert logits.shape == (1, 8, 64)
    print("KERNELS", kernels.__file__)
    print("MEGATHINK_KERNELS", megathink.kernels.__file__)
    """
)


def run_from_root(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONWARNINGS"] = "ignore"
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def printed(result: subprocess.CompletedProcess, key: str) -> Path:
    line = next(line for line in result.stdout.splitlines() if line.startswith(key + " "))
    return Path(line.split(" ", 1)[1]).resolve()


def assert_installed_kernels(path: Path) -> None:
    # (.venv may live inside the repository: compare with the folder, not with the root.)
    assert REPO / "kernels" not in (path, *path.parents), f"import kernels resolved to the repository: {path}"
    assert "site-packages" in path.parts, path


def assert_pypi_kernels(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-4000:]
    assert_installed_kernels(printed(result, "KERNELS"))
    assert printed(result, "MEGATHINK_KERNELS") == REPO / "kernels" / "__init__.py"


def test_pypi_kernels_is_installed_for_these_tests():
    # transformers imports it when a model module loads; the checks below are only meaningful with it.
    assert importlib.metadata.version("kernels")


def test_python_c_from_the_root_builds_a_qwen2_with_pypi_kernels():
    assert_pypi_kernels(run_from_root(sys.executable, "-c", BUILD_QWEN2))


def test_python_m_pytest_from_the_root_builds_a_qwen2_with_pypi_kernels(tmp_path):
    test_file = tmp_path / "test_build_qwen2.py"
    test_file.write_text("def test_build():\n" + textwrap.indent(BUILD_QWEN2, "    "))
    result = run_from_root(sys.executable, "-m", "pytest", str(test_file), "-q", "-s", "-p", "no:cacheprovider")
    assert_pypi_kernels(result)


def test_bare_names_of_the_repository_packages_never_resolve_to_the_repository():
    code = textwrap.dedent(
        """
        import sys
        for name in ("kernels", "hydra_conf"):
            try:
                module = __import__(name)
            except ModuleNotFoundError as error:
                print(name, "MISSING", error)
            else:
                print(name, "FOUND", module.__file__)
        """
    )
    result = run_from_root(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["kernels"].startswith("FOUND")
    assert_installed_kernels(Path(lines["kernels"].split(" ", 1)[1]).resolve())
    assert lines["hydra_conf"].startswith("MISSING") and "megathink.hydra_conf" in lines["hydra_conf"]


def test_without_the_installed_package_the_bare_name_is_missing_not_the_repository_folder():
    code = "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]\nimport kernels"
    result = run_from_root(sys.executable, "-c", code)
    assert result.returncode != 0
    assert "No module named 'kernels'" in result.stderr and "megathink.kernels" in result.stderr


def test_no_top_level_folder_is_a_package_under_a_name_an_installed_distribution_uses():
    """Folders with an __init__.py at the root (and on pytest's pythonpath, tests/) are guarded
    or have a name no installed distribution provides; the others are at most namespace
    portions, which never win over a real package."""
    taken = {name for name, dists in importlib.metadata.packages_distributions().items() if set(dists) != {"megathink"}}
    guarded = {"kernels", "hydra_conf"}
    for parent in (REPO, REPO / "tests"):
        for folder in parent.iterdir():
            if (folder / "__init__.py").is_file():
                name = folder.name
                if name in guarded:
                    assert "hand_over_to_installed" in (folder / "__init__.py").read_text()
                else:
                    assert name not in taken, f"{folder} is importable as {name!r}, a name installed packages use"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_benchmark_and_example_script_imports_cleanly_from_the_root(script):
    # As `python benchmarks/x.py` would: the script's folder first on sys.path (and the root,
    # which some scripts insert); then a transformers model module, which imports `kernels`.
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        sys.path.insert(0, {str(script.parent)!r})
        spec = importlib.util.spec_from_file_location("script_under_test", {str(script)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        import transformers.models.qwen2.modeling_qwen2
        import kernels
        print("KERNELS", kernels.__file__)
        """
    )
    result = run_from_root(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr[-4000:]
    assert_installed_kernels(printed(result, "KERNELS"))


@pytest.mark.parametrize("script", [path for path in SCRIPTS if "argparse" in path.read_text()], ids=lambda p: p.name)
def test_benchmark_scripts_start_from_the_root(script):
    result = run_from_root(sys.executable, str(script.relative_to(REPO)), "--help", timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "usage" in result.stdout.lower()


def test_shell_examples_parse():
    for script in sorted((REPO / "examples").glob("*.sh")):
        result = run_from_root("bash", "-n", str(script))
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


@pytest.mark.megatron
def test_megathink_convert_runs_from_the_root(tmp_path):
    """The console script from the root; it spawns its conversion ranks with `python -m`."""
    pytest.importorskip("megatron.core")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "hf")
    megathink = Path(sys.executable).with_name("megathink")
    for args in (
        ["hf-to-megatron", "--hf-dir", str(tmp_path / "hf"), "--out", str(tmp_path / "mc")],
        ["megatron-to-hf", "--ckpt", str(tmp_path / "mc"), "--out", str(tmp_path / "back")],
    ):
        result = run_from_root(str(megathink), "convert", *args)
        assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "back" / "model.safetensors").is_file()
