"""`megathink serve`: an HTTP rollout server speaking SGLang's native API (argparse, no Hydra).

    megathink serve --model-path DIR [--tokenizer-path DIR | --skip-tokenizer-init] [--host 127.0.0.1] [--port 30000]
                    [--api-key KEY] [--device cpu|cuda|auto] [--dtype auto|float32|bfloat16|float16]
                    [--batch-size 256] [--seed 0] [--threads 0] [--log-level info]

The flags mirror `python -m sglang.launch_server` where both have them (`--model-path`,
`--tokenizer-path`, `--skip-tokenizer-init`, `--host`, `--port`, `--api-key`, `--dtype`, `--log-level`); the others are
megathink's own. It serves the local HF folder's model with the in-process engine (see
`megathink.rollout.http_server` for the protocol) until SIGTERM / Ctrl-C. A bad folder or a port
in use prints one line and exits 2. The API key may also come from the environment variable
named by `--api-key-env` (kept out of process lists).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from megathink.errors import MegathinkError

log = logging.getLogger("megathink.serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="megathink serve", description="Serve a local HF model over SGLang's native HTTP API.")
    parser.add_argument("--model-path", required=True, help="local HF model folder (config.json + *.safetensors)")
    parser.add_argument("--tokenizer-path", default=None, help="tokenizer folder (default: --model-path)")
    parser.add_argument("--skip-tokenizer-init", action="store_true",
                        help="load no tokenizer: input_ids in, ids out (no text, chat or EOS from the tokenizer)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=30000, help="port to bind (default 30000; 0 picks a free one)")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every request")
    parser.add_argument("--api-key-env", default=None, help="read the API key from this environment variable instead")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="where the model runs (default cpu)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                        help="parameter dtype (default: the folder's own)")
    parser.add_argument("--batch-size", type=int, default=256, help="sequences decoded together (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of requests that carry no sampling_seed")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's own choice)")
    parser.add_argument("--max-sequences-per-request", type=int, default=4096, help="cap on inputs x n per request")
    parser.add_argument("--max-request-bytes", type=int, default=64 << 20, help="cap on a request body (default 64 MiB)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def _check(args: argparse.Namespace) -> None:
    for flag, value, low in (("--port", args.port, 0), ("--batch-size", args.batch_size, 1), ("--seed", args.seed, 0),
                             ("--threads", args.threads, 0), ("--max-sequences-per-request", args.max_sequences_per_request, 1),
                             ("--max-request-bytes", args.max_request_bytes, 1)):
        if value < low:
            raise MegathinkError(f"{flag} {value} is invalid: must be >= {low}.")
    if args.port > 65535:
        raise MegathinkError(f"--port {args.port} is invalid: must be <= 65535.")
    if args.api_key_env is not None and not os.environ.get(args.api_key_env):
        raise MegathinkError(f"--api-key-env {args.api_key_env}: that environment variable is unset or empty; export the key in it.")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        _check(args)
        import torch

        from megathink.rollout.http_server import make_server
        from megathink.rollout.served_model import ServedModel

        if args.threads:
            torch.set_num_threads(args.threads)
        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
        if device == "cuda" and not torch.cuda.is_available():
            raise MegathinkError("--device cuda is invalid here: no CUDA device is visible; use --device cpu.")
        served = ServedModel(
            args.model_path, tokenizer_path=args.tokenizer_path, skip_tokenizer=args.skip_tokenizer_init, device=device, dtype=args.dtype,
            batch_size=args.batch_size, seed=args.seed, max_sequences=args.max_sequences_per_request,
        )
        api_key = os.environ[args.api_key_env] if args.api_key_env else args.api_key
        try:
            server = make_server(served, args.host, args.port, api_key=api_key, max_body_bytes=args.max_request_bytes)
        except OSError as err:
            raise MegathinkError(f"--host {args.host} --port {args.port}: cannot listen there ({err}); choose another port.") from err
    except MegathinkError as err:
        print(f"megathink serve: error: {err}", file=sys.stderr)
        return 2
    log.info("serving %s on %s (device %s, vocab %d, context %d)", served.model_path, server.url, device,
             served.limits.vocab_size, served.limits.context)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
