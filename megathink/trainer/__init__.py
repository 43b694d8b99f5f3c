"""Training loops and their cadence: SFT (Thinkless stage 1), RL (GRPO / DeGRPO), checkpoints, metrics, schedules.

The loops talk to the model only through `megathink.models.PolicyBackend`. Submodules are
imported directly (`from megathink.trainer.sft import run_sft`); this package file stays
empty of imports so `import megathink.trainer.checkpoint` does not pull in the whole stack.
"""
