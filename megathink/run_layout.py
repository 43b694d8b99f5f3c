"""Names of what a stage writes into its folder (`<output_dir>/<stage>/`), in one place.

The trainer writes these and the evaluation reads them back (`megathink eval` on a step
checkpoint or a stage's `hf/`), so both import the names from here rather than spelling them.
"""

RESOLVED_CONFIG = "resolved_config.yaml"
"""The full validated RunConfig of the run that wrote the stage."""

CHECKPOINTS_DIR = "checkpoints"
"""Folder of the atomic step checkpoints `step_NNNNNNNN/`."""

STEP_WEIGHTS = "model.safetensors"
"""The model weights inside a step checkpoint."""

HF_DIR = "hf"
"""The stage's final model and tokenizer as a HuggingFace directory."""

MEGATRON_STATE = "megatron"
"""Inside a step checkpoint of the megatron backend: the distributed checkpoint (sharded weights
and AdamW state, `megathink_model.json`, tokenizer files) that `megathink convert` also reads."""

SCHEDULER_STATE = "scheduler.pt"
"""Inside a step checkpoint of the megatron backend: the learning-rate schedule's state."""

MEGATRON_START_WEIGHTS = ".megatron-start"
"""In a stage folder while a megatron job starts: rank 0's starting HF weights (safetensors and
config.json) that every rank reads its slice from; removed once all ranks have loaded."""
