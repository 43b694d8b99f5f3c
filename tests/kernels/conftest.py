"""Kernel tests run the Triton kernels on CPU through Triton's interpreter.

TRITON_INTERPRET must be set before the kernels module is imported (the kernels are built as
interpreted functions then), so it is set here, at collection, before any test runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
