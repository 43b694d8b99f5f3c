"""torchrun worker: the streaming exporter gives rank 0 the HF checkpoint's tensors, and nothing elsewhere.

`export_worker.py HF_DIR TP PP OUT_JSON [vpp=V]`: the HF folder is loaded into megatron at
(TP, PP, VPP), exported through `iter_hf_buckets` with small buckets, and compared on rank 0
tensor by tensor (bit-exact) and in HF order; the other ranks must receive nothing.
"""

import json
import sys

import torch

from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
from megathink.models.megatron.model import build_gpt_chunks
from megathink.models.megatron.weights_io import iter_hf_buckets, load_hf_into, read_hf_dir


def main() -> None:
    vpp = int(next((a.split("=")[1] for a in sys.argv if a.startswith("vpp=")), "1"))
    args = [a for a in sys.argv if not a.startswith("vpp=")]
    hf_dir, tp, pp, out = args[1], int(args[2]), int(args[3]), args[4]
    info = init_parallel(tp, pp, vpp=vpp, seed=0)
    spec, _, hf = read_hf_dir(hf_dir)
    chunks, _ = build_gpt_chunks(spec, tp=tp, pp=pp, vpp=vpp)
    load_hf_into(chunks, hf, spec, info)
    bucket_bytes = 16 * 1024
    buckets = list(iter_hf_buckets(chunks, spec, info, bucket_bytes=bucket_bytes))
    names = [name for bucket in buckets for name, _ in bucket]
    mine = {"rank": info.rank, "tensors": len(names)}
    if info.rank == 0:
        want = {name: hf[name] for name in hf if not (spec.tied_embeddings and name == "lm_head.weight")}
        got = {name: tensor for bucket in buckets for name, tensor in bucket}
        mine.update(
            same_names=sorted(got) == sorted(want),
            unique=len(names) == len(set(names)),
            bit_exact=all(torch.equal(got[name], want[name]) for name in want if name in got),
            embedding_first=names[0] == "model.embed_tokens.weight",
            layers_in_order=[int(n.split(".")[2]) for n in names if n.startswith("model.layers.")]
            == sorted(int(n.split(".")[2]) for n in names if n.startswith("model.layers.")),
            buckets_bounded=all(
                len(bucket) == 1 or sum(t.numel() * t.element_size() for _, t in bucket) <= bucket_bytes for bucket in buckets
            ),
        )
    gathered = [None] * info.world_size
    torch.distributed.all_gather_object(gathered, mine)
    if info.rank == 0:
        json.dump(gathered, open(out, "w"))
    shutdown_parallel()


if __name__ == "__main__":
    main()
