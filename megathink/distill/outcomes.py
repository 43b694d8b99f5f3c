"""What distilling one question produced: the kept sample of each answer form and counts over all n.

`QuestionResult` is one journal line (journal.py): the question (problem, reference answer,
level, `prompt_id`) and, per form, the picked sample's text with its verdicts plus how many of
the n samples were correct and how many finished. Keeping only the picked text (not all n)
keeps the journal about n times smaller; the keep filter (filter.py) is applied to these
results when the output is written, so a rerun with another `--filter` re-cuts the output
without new requests, while another `--pick` needs a new journal.

`QuestionResult.light()` drops the texts (keeping their lengths): a run holds only light
results in memory and reads the texts back from the journal when it writes the output, so a
million long answers never sit in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional


@dataclass(frozen=True)
class Sample:
    """One graded answer of one endpoint."""

    text: str
    """The answer text (for the long form: what follows the think token)."""
    finished: bool
    """The model stopped by itself (not at the token cap)."""
    well_formed: bool
    """Finished, non-empty, and of the right shape for its form (filter.well_formed)."""
    correct: bool
    """Well formed and its last boxed answer matches the reference."""
    tokens: Optional[int] = None
    """Length in tokens when the server reported it."""
    chars: int = field(default=-1, compare=False)
    """Length of the text in characters (kept by `light()`, which empties `text`)."""

    def __post_init__(self) -> None:
        if self.chars < 0:
            object.__setattr__(self, "chars", len(self.text))

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "finished": self.finished, "well_formed": self.well_formed,
                "correct": self.correct, "tokens": self.tokens}


@dataclass(frozen=True)
class FormResult:
    """One answer form (long or short) of one question: the picked sample and counts over all samples."""

    picked: Sample
    samples: int
    correct: int
    """How many of the samples were correct."""
    finished: int
    """How many of the samples stopped by themselves."""

    def to_json(self) -> dict[str, Any]:
        return {"picked": self.picked.to_json(), "samples": self.samples, "correct": self.correct,
                "finished": self.finished}

    def light(self) -> "FormResult":
        return replace(self, picked=replace(self.picked, text="", chars=self.picked.chars))

    @staticmethod
    def from_json(raw: Any) -> "FormResult":
        if not isinstance(raw, Mapping) or not isinstance(raw.get("picked"), Mapping):
            raise ValueError("an answer form must be an object with a 'picked' object")
        picked = raw["picked"]
        text, tokens = picked.get("text"), picked.get("tokens")
        if not isinstance(text, str):
            raise ValueError("picked.text must be a string")
        flags = [picked.get(key) for key in ("finished", "well_formed", "correct")]
        if not all(isinstance(flag, bool) for flag in flags):
            raise ValueError("picked.finished/well_formed/correct must be true or false")
        if tokens is not None and not _is_int(tokens):
            raise ValueError("picked.tokens must be an integer or null")
        counts = [raw.get(key) for key in ("samples", "correct", "finished")]
        if not all(_is_int(count) and count >= 0 for count in counts) or counts[0] < 1 or max(counts[1:]) > counts[0]:
            raise ValueError("samples/correct/finished must be integers with 0 <= correct, finished <= samples >= 1")
        return FormResult(
            picked=Sample(text=text, finished=flags[0], well_formed=flags[1], correct=flags[2], tokens=tokens),
            samples=counts[0], correct=counts[1], finished=counts[2],
        )


@dataclass(frozen=True)
class QuestionResult:
    """Both answer forms of one question."""

    prompt_id: str
    problem: str
    answer: str
    level: Optional[int]
    long: FormResult
    short: FormResult

    def light(self) -> "QuestionResult":
        """This result without the problem and answer texts (their lengths are kept)."""
        return replace(self, problem="", long=self.long.light(), short=self.short.light())

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id, "problem": self.problem, "answer": self.answer, "level": self.level,
            "long": self.long.to_json(), "short": self.short.to_json(),
        }

    @staticmethod
    def from_json(raw: Any) -> "QuestionResult":
        """A result from one parsed journal line; ValueError naming what is wrong."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        pid, problem, answer, level = raw.get("prompt_id"), raw.get("problem"), raw.get("answer"), raw.get("level")
        if not isinstance(pid, str) or not pid:
            raise ValueError(f"prompt_id = {pid!r} must be a non-empty string")
        if not isinstance(problem, str) or not isinstance(answer, str):
            raise ValueError("problem and answer must be strings")
        if level is not None and not _is_int(level):
            raise ValueError(f"level = {level!r} must be an integer or null")
        return QuestionResult(
            prompt_id=pid, problem=problem, answer=answer, level=level,
            long=FormResult.from_json(raw.get("long")), short=FormResult.from_json(raw.get("short")),
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
