"""Answer extraction and grading of responses (rewards for RL, accuracy for evaluation)."""

from megathink.rewards.boxed import extract_last_boxed

__all__ = ["extract_last_boxed"]
