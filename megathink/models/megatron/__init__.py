"""The megatron-core backend: sharded GPTModels for tensor, pipeline and data parallel training.

Modules (megatron-core is imported only inside this package, and only when used):

- `cpu_compat`: patches for megatron's hard-coded CUDA calls, applied only without CUDA (gloo).
- `gpt_spec`: the Qwen2 / Llama shape from an HF config.json; `weight_map`: HF <-> megatron
  tensor layouts per TP / PP rank (pure tensors).
- `distributed`: process group + megatron parallel state; `model`: the GPTModel builder
  (Transformer Engine spec when present, local spec otherwise).
- `forward`: row alignment, vocab-parallel log-probs / entropy, the schedule driver;
  `packing`: several samples per row behind a block-diagonal causal mask.
- `backend`: `MegatronBackend`, the trainer-facing object (`run_micro_batches`, clipping, export).
- `weights_io`: reading / writing HF folders, the bucketed HF exporter;
  `dist_checkpoint`: resharding checkpoints (with `optimizer_state`: the AdamW moments); `convert`: `megathink convert`.
"""
