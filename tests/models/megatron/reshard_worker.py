"""torchrun worker: load a megatron checkpoint at another layout and check logits (see parity_worker).

`reshard_worker.py HF_DIR CKPT TP PP OUT_JSON [vpp=V]`.
"""

import sys

from parity_worker import main

if __name__ == "__main__":
    hf_dir, ckpt, tp, pp, out = sys.argv[1:6]
    sys.argv = [sys.argv[0], hf_dir, tp, pp, out, ckpt, *sys.argv[6:]]
    main()
