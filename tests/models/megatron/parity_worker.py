"""torchrun worker for the megatron parity tests: HF tiny model -> megatron at (tp, pp) -> logits.

Run as `torchrun --nproc-per-node N parity_worker.py HF_DIR TP PP OUT_JSON [CKPT] [vpp=V] [cp=C]`. The
weights come from HF_DIR, or from the megatron checkpoint CKPT when given (saved at any layout:
the reshard test); `vpp=V` builds V model chunks per pipeline rank (interleaved schedule); `cp=C` splits every
row over C context-parallel ranks;
`save=DIR` then writes the model as a megatron checkpoint at this layout. The last stage writes the max |megatron - transformers| over the logits of the
real tokens.
"""

import json
import sys

import torch

from megathink.models.megatron.context_parallel import padded_width
from megathink.models.megatron.distributed import init_parallel, shutdown_parallel
from megathink.models.megatron.forward import MicroBatch, align_rows, run_schedule
from megathink.models.megatron.model import build_gpt_chunks
from megathink.models.megatron.weights_io import load_hf_into, read_hf_dir


def main() -> None:
    options = dict(a.split("=", 1) for a in sys.argv if a.startswith(("vpp=", "cp=", "save=")))
    vpp, cp = int(options.get("vpp", "1")), int(options.get("cp", "1"))
    args = [a for a in sys.argv if not a.startswith(("vpp=", "cp=", "save="))]
    hf_dir, tp, pp, out = args[1], int(args[2]), int(args[3]), args[4]
    ckpt = args[5] if len(args) > 5 else None
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (3, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padded
    mask[2, 7:] = 0  # right padded
    # The transformers reference first: loaded after torch.distributed is initialised,
    # from_pretrained leaves RoPE's non-persistent inv_freq buffer uninitialised (transformers 5).
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        want = [ref(input_ids=ids[row][mask[row] == 1][None]).logits[0] for row in range(3)]  # [L, V] each
    info = init_parallel(tp, pp, vpp=vpp, cp=cp, seed=0)
    spec, config, hf = read_hf_dir(hf_dir)
    model, _ = build_gpt_chunks(spec, tp=tp, pp=pp, vpp=vpp, cp=cp)
    if ckpt is None:
        load_hf_into(model, hf, spec, info)
    else:
        from megathink.models.megatron.dist_checkpoint import load_model

        load_model(model, ckpt)
    for chunk in model:
        chunk.eval()
    width = padded_width(ids.shape[1], cp)  # 9 columns -> 12 at cp=2
    ids, mask = (torch.nn.functional.pad(x, (0, width - x.shape[1])) for x in (ids, mask))
    aligned, starts, lengths = align_rows(ids, mask)
    positions = torch.arange(width).expand_as(ids)
    mb = MicroBatch(aligned, positions, lengths, extras={"keep_logits": True})
    with torch.no_grad():
        run_schedule(model, [mb], lambda m, logp, ent: (logp.sum() * 0, {"logp": logp}),
                     temperature=0.7, vocab_size=spec.vocab_size, entropy=False, forward_only=True)
    if info.last_stage and info.tp_rank == 0 and info.main_replica:
        worst = max(float((mb.extras["logits"][row, : len(want[row])] - want[row]).abs().max()) for row in range(3))
        json.dump({"logits": worst}, open(out, "w"))
    if "save" in options:
        from megathink.models.megatron.dist_checkpoint import save_model

        save_model(model, options["save"], info=info, hf_config=config, source_dir=hf_dir)
    shutdown_parallel()


if __name__ == "__main__":
    main()
