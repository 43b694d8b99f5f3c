"""A stage step's time from its FLOPs, at `plan.mfu` of `plan.peak_tflops` per GPU.

FLOPs per token position (N_mm = the parameters of the layers and the lm_head, L layers, q = a d,
T = the attention span of the token's row: the padded width for padded rows, the sample's own
length for packed rows and token-budget micro-batches):

    forward   2 N_mm + 2 L q T        (matmuls; causal attention QK^T and AV over T / 2 on average)
    training  3 x forward             (forward + backward)
            + 1 x layers' forward     with parallel.recompute=full
            + the attention forward   with selective
            + 2 h V                   with the chunked / fused log-prob head (its backward recomputes the logits)
    scoring   1 x forward per pass    (old log-probs with rl.mini_batches > 1, KL reference log-probs)

Token positions are the computed ones: rows padded to the longest (fixed micro-batches without
packing) count their padding. Mean lengths are `plan.length_fill` x the caps (workload.py). The
FLOPs are spread over the world's GPUs; the pipeline bubble adds (pp - 1) / (m vpp) of the
time (m micro-batches per replica). Not modelled: generating the rollouts (SGLang engines or
the local engine), grading, weight sync, evaluations, checkpoints: what this gives is the
trainer's compute per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.run import RunConfig
from megathink.planning.layout import Layout
from megathink.planning.model_shape import ModelShape
from megathink.planning.workload import StageWork


@dataclass(frozen=True)
class StepTime:
    flops: float  # per stage step, all GPUs
    seconds: float  # trainer compute per stage step
    tokens: float  # real tokens trained per stage step
    bubble: float  # pipeline bubble fraction added

    def describe(self) -> str:
        return (
            f"{self.seconds:,.{0 if self.seconds >= 10 else 2}f} s of trainer compute per step ({self.flops / 1e15:,.1f} PFLOP, "
            f"{self.tokens / 1e6:,.2f} M tokens{f', +{100 * self.bubble:.0f}% pipeline bubble' if self.bubble else ''})"
        )


def step_time(cfg: RunConfig, shape: ModelShape, layout: Layout, work: StageWork) -> StepTime:
    if work.largest is None:
        return StepTime(flops=0.0, seconds=0.0, tokens=0.0, bubble=0.0)
    q, layers = shape.q_width, shape.layers
    span = work.attention_span
    per_token_mm = 2 * shape.matmul_params()
    per_token_attention = 2 * layers * q * span
    forward = per_token_mm + per_token_attention
    layers_forward = 2 * layers * shape.layer_params() + per_token_attention
    training = 3 * forward
    if layout.recompute == "full":
        training += layers_forward
    elif layout.recompute == "selective":
        training += per_token_attention
    if cfg.kernels.logprob_for(shape.vocab) != "naive":
        training += 2 * shape.hidden * shape.vocab
    positions = work.computed_tokens * work.optimizer_steps  # per stage step, all replicas
    flops = positions * (training + work.scoring_passes * forward)
    gpus = layout.world
    seconds = flops / (gpus * cfg.plan.peak_tflops * 1e12 * cfg.plan.mfu)
    bubble = (layout.pp - 1) / (work.micro_batches * layout.vpp) if layout.pp > 1 else 0.0
    return StepTime(
        flops=flops, seconds=seconds * (1 + bubble), tokens=work.mean_tokens * work.optimizer_steps, bubble=bubble
    )
