"""megathink: train reasoning LLMs when to think (Thinkless SFT + DeGRPO, AdaptThink).

Dependencies flow one way: config -> kernels/algorithms/rewards/data -> models/rollout ->
trainer -> launch. Only `megathink.launch` imports Hydra.
"""

__version__ = "0.1.0"
