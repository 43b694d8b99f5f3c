"""Which prompts each RL step trains on: shuffled epochs over the prompt set, resumable.

`PromptSampler(num_prompts, per_step, seed)` yields lists of prompt indices; each epoch is a
fresh permutation seeded by (seed, epoch), and `state_dict()` records (epoch, position) so a
resumed run draws exactly the prompts the uninterrupted run would have. A step never mixes
two epochs: the tail of an epoch that cannot fill a step is skipped (like drop_last).
"""

from __future__ import annotations

import random

from megathink.errors import ConfigError


class PromptSampler:
    def __init__(self, num_prompts: int, per_step: int, seed: int) -> None:
        if per_step > num_prompts:
            raise ConfigError(
                f"rl.prompts_per_step = {per_step} is invalid: the training set has only {num_prompts} "
                "prompts; lower rl.prompts_per_step or add prompts."
            )
        self.num_prompts, self.per_step, self.seed = num_prompts, per_step, seed
        self.epoch, self.position = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.num_prompts))
        random.Random(f"rl-prompts:{self.seed}:{epoch}").shuffle(order)
        return order

    def next(self) -> list[int]:
        """Indices of the next step's prompts."""
        if self.position + self.per_step > self.num_prompts:
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        chosen = self._order[self.position : self.position + self.per_step]
        self.position += self.per_step
        return chosen

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation(self.epoch)
