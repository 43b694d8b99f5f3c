"""Thinkless stage-1 data: long answers from a reasoning endpoint, short ones from an instruct endpoint.

`run_distill(DistillSettings(...))` (the library side of `megathink distill`, docs/DISTILL.md)
asks both endpoints about every prompt of a file, grades the answers with megathink's graders,
keeps the questions a filter admits, and writes the hybrid SFT file `megathink sft` reads.

Files, one job each: `settings` (validated run settings), `transport` (JSON over HTTP with
retries), `completions` (the client call shape, URL joining), `native_api` / `openai_api`
(the two endpoint APIs), `question` (one question end to end), `filter` (pick rule and keep
filter), `outcomes` (result records), `journal` (the resumable append-only record),
`scheduler` (bounded concurrency), `grading` (the grade function), `summary`, `pipeline`.
"""

from megathink.distill.pipeline import DistillResult, run_distill
from megathink.distill.settings import DistillSettings, EndpointSettings, SamplingSettings

__all__ = ["DistillResult", "DistillSettings", "EndpointSettings", "SamplingSettings", "run_distill"]
