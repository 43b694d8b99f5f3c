"""The megatron-core backend: sharded GPTModels for tensor, pipeline, context and data parallel training.

Modules (megatron-core is imported only inside this package, and only when used):

- `cpu_compat`: patches for megatron's hard-coded CUDA calls, applied only without CUDA (gloo).
- `gpt_spec`: the Qwen2 / Llama shape from an HF config.json; `weight_map`: HF <-> megatron
  tensor layouts per TP / PP rank (pure tensors).
- `distributed`: process group + megatron parallel state; `model`: the GPTModel builder
  (Transformer Engine spec when present, local spec otherwise, with `local_attention`: torch
  SDPA for THD rows and context parallelism; `parallel.recompute` as megatron's full or
  selective recompute; `parallel.sequence_parallel`, with Transformer Engine only).
- `forward`: row alignment, vocab-parallel log-probs / entropy, the schedule driver;
  `packing`: a micro-batch's samples end to end in one THD row; `context_parallel`: the split
  of rows over cp ranks and the gathers back.
- `backend`: `MegatronBackend`, the trainer-facing object (`run_micro_batches`, clipping, export).
- `weights_io`: reading / writing HF folders, the bucketed HF exporter;
  `dist_checkpoint`: resharding checkpoints (with `optimizer_state`: the AdamW moments); `convert`: `megathink convert`.
"""
