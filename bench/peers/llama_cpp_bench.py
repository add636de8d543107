"""llama.cpp (through llama-cpp-python) on one GGUF: prefill and decode speeds as llama-bench measures them.

  python llama_cpp_bench.py MODEL.gguf [--threads 2] [--pp 512] [--tg 128] [--ctx 8192] [--ctx-tg 32]

Prints one JSON object: pp (tokens/s over a prompt of --pp tokens in one batch), tg (tokens/s decoding --tg
tokens one at a time after a 1-token prompt), and ctx_tg (tokens/s decoding --ctx-tg tokens after --ctx
tokens of context). Token ids are random (seeded), as llama-bench's; the model's output is not sampled, so
the figures are the model's evaluation alone. Each figure is the best of --reps runs.
"""

import argparse
import json
import random
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--ctx-tg", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from llama_cpp import Llama  # imported here so that --help works without the venv

    n_ctx = max(args.pp, args.tg + 1, args.ctx + args.ctx_tg) + 16
    llm = Llama(
        model_path=args.model,
        n_ctx=n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    rng = random.Random(args.seed)
    vocab = llm.n_vocab()

    def tokens(n):
        return [rng.randrange(vocab) for _ in range(n)]

    def prefill(toks):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(toks)  # batches of n_batch tokens
        return time.perf_counter() - t0

    def decode(n):
        t0 = time.perf_counter()
        for t in tokens(n):
            llm.eval([t])
        return time.perf_counter() - t0

    out = {"threads": args.threads, "model": args.model}
    out["pp"] = max(args.pp / prefill(tokens(args.pp)) for _ in range(args.reps))
    best = 0.0
    for _ in range(args.reps):
        prefill(tokens(1))
        best = max(best, args.tg / decode(args.tg))
    out["tg"] = best
    if args.ctx > 0:
        prefill(tokens(args.ctx))
        out["ctx"] = args.ctx
        best = 0.0
        # The context stays; each repetition decodes ctx_tg more tokens after it (the cache grows by
        # reps * ctx_tg positions, under 1% of ctx).
        for _ in range(args.reps):
            best = max(best, args.ctx_tg / decode(args.ctx_tg))
        out["ctx_tg"] = best
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
