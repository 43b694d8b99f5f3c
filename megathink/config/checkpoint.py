"""When checkpoints are written and how a run resumes.

Checkpoints are written atomically (to a temporary directory renamed into place), so a run
killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import check_int, check_nonempty_str

RESUME_KEYWORDS = ("auto", "never")


@dataclass(kw_only=True)
class CheckpointConfig:
    save_every: int = 500
    """Write a checkpoint every this many optimizer steps (and always at the end); 0 only at the end."""

    keep_last: int = 2
    """Keep this many most recent step checkpoints; older ones are deleted. 0 keeps all."""

    resume: str = "auto"
    """'auto' resumes from the newest checkpoint in the output directory when there is one;
    'never' refuses to start in a directory that already holds checkpoints; any other value is
    the path of a checkpoint directory to resume from."""

    save_hf: bool = True
    """Also write the final weights and tokenizer as a HuggingFace directory (`<output>/hf`)."""

    def __post_init__(self) -> None:
        check_int("checkpoint.save_every", self.save_every, low=0)
        check_int("checkpoint.keep_last", self.keep_last, low=0)
        check_nonempty_str("checkpoint.resume", self.resume)
