"""Install megathink.

`kernels/` (the per-token log-prob ops, Triton kernels beside their torch references) and
`hydra_conf/` (the Hydra config tree) live at the top of the repository but install inside the
namespace as `megathink.kernels` and `megathink.hydra_conf`: PyPI has an unrelated package
called `kernels`, so a bare top-level module of that name is never installed.

Always install with the constraints file (`pip install -c constraints.txt ...`): it pins the
CPU torch build and a Hydra-compatible omegaconf.
"""

from setuptools import find_packages, setup

TRITON = "triton>=3.2; platform_system == 'Linux' and platform_machine == 'x86_64'"
SUBMITIT = "hydra-submitit-launcher==1.2.0"
# NVIDIA DALI, the optional SFT shard reader (data.sft_reader=dali): its CPU pipelines run without a
# GPU, so the tests install it (a ~405 MB wheel, Linux x86_64) and run its tests in CI. The same
# cuda120 build as the `dali` extra: two DALI builds conflict in one environment.
DALI_TEST = "nvidia-dali-cuda120>=1.40; platform_system == 'Linux' and platform_machine == 'x86_64'"

setup(
    name="megathink",
    version="0.1.0",
    description="Train reasoning LLMs when to think: Thinkless (SFT + DeGRPO) and AdaptThink.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["megathink", "megathink.*"])
    + ["megathink.kernels", "megathink.hydra_conf"],
    package_dir={"megathink.kernels": "kernels", "megathink.hydra_conf": "hydra_conf"},
    package_data={"megathink.hydra_conf": ["*.yaml", "*/*.yaml", "hydra/launcher/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0,<6",
        "tokenizers>=0.21",
        "safetensors>=0.4",
        "hydra-core>=1.3.2,<1.4",
        "omegaconf>=2.3,<2.4",
        "pyarrow>=14",
        "pyyaml>=6",
        "jinja2>=3.1",
        "numpy>=1.26",
        "tqdm>=4.66",
        "math-verify[antlr4_9_3]>=0.9,<0.10",
        "matplotlib>=3.8",
        "tensorboard>=2.15",
    ],
    extras_require={
        # triton: the fused log-prob kernels, tested on CPU through its interpreter (a ~290 MB
        # wheel, Linux x86_64 only; CUDA builds of torch bring their own).
        "test": ["pytest>=8", "pytest-timeout>=2.3", TRITON, SUBMITIT, DALI_TEST],
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", TRITON, DALI_TEST],
        "megatron": ["megatron-core>=0.16", "psutil>=5.9"],
        "gpu": ["transformer-engine[pytorch]>=2.0", "sglang>=0.5"],
        "dali": ["nvidia-dali-cuda120>=1.40"],
        "wandb": ["wandb>=0.18"],
        # `hydra/launcher=submitit_slurm`: sweeps as SLURM job arrays (docs/CLUSTER.md).
        "slurm": [SUBMITIT],
        "bench": ["trl>=1.0"],
    },
    entry_points={"console_scripts": ["megathink=megathink.launch.cli:main"]},
)
