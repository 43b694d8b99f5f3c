"""Backend tests with kernels.logprob='fused' run the Triton kernels through Triton's CPU
interpreter; it must be switched on before the kernels module is first imported."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
