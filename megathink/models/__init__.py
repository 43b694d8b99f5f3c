"""Policy models behind one protocol: the trainer sees a `PolicyBackend`, never a framework.

`hf_backend` wraps a single-process `transformers` causal LM (Qwen2 or Llama family); a
Megatron-core backend implements the same protocol later.
"""

from megathink.models.hf_backend import HFBackend, build_hf_backend
from megathink.models.protocol import PolicyBackend

__all__ = ["HFBackend", "PolicyBackend", "build_hf_backend"]
