"""zebra against llama.cpp on one GGUF, in one run, at the settings of issue #15's targets.

  python compare.py ZEBRA_BINARY MODEL.gguf [--threads 2] [--ctx 8192] [--json OUT.json]

Measures, alternating the engines (llama.cpp first, then zebra, per figure):
  pp512   prefill of 512 random tokens, tokens/s
  tg128   decode of 128 tokens after a 1-token prompt, tokens/s
  ctx     decode of 32 tokens after --ctx tokens of context: llama.cpp (its default f16 KV cache) after a real
          prefill; zebra after --fill-context positions (the same cost per step: docs/inference.md), with
          --kv-dtype f16, as full attention and re-laid as Zebra (L = 4, window 512)
and prints each figure with the ratio zebra / llama.cpp and the targets, plus zebra's KV bytes at the context
against the ratio `zebra info` predicts. Not part of CI (bench/peers/run.sh installs llama-cpp-python).
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def zebra_generate(zebra, model, threads, args):
    cmd = [zebra, "generate", model, "--ignore-eos", "-q", "--threads", str(threads)] + args
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    text = p.stderr + p.stdout
    out = {}
    m = re.search(r"prefill: (\d+) tokens in [\d.]+ s = ([\d.]+) tok/s", text)
    if m:
        out["prefill"] = float(m.group(2))
    m = re.search(r"decode:\s+(\d+) tokens in [\d.]+ s = ([\d.]+) tok/s", text)
    if m:
        out["decode"] = float(m.group(2))
    m = re.search(r"\((\d+) bytes used\); a full-attention cache: [\d.]+ \w+ \((\d+) bytes\)", text)
    if m:
        out["kv_bytes"] = int(m.group(1))
        out["kv_full_bytes"] = int(m.group(2))
    return out


def zebra_info_kv_ratio(zebra, model, ctx, relayout):
    p = subprocess.run([zebra, "info", model, "--context", str(ctx)] + relayout, capture_output=True, text=True)
    m = re.search(r"KV cache at context.*?ratio zebra/full: ([\d.]+)", p.stdout, re.S)
    return float(m.group(1)) if m else None


def llama(python, model, threads, **kw):
    cmd = [python, str(HERE / "llama_cpp_bench.py"), model, "--threads", str(threads)]
    for k, v in kw.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("zebra")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--json")
    a = ap.parse_args()
    py = sys.executable
    zebra_l4 = ["--group-size", "4", "--window", "512"]

    lc_short = llama(py, a.model, a.threads, pp=512, tg=128, ctx=0)
    z_pp = zebra_generate(a.zebra, a.model, a.threads, ["--random-prompt", "512", "-n", "1"])
    z_tg = zebra_generate(a.zebra, a.model, a.threads, ["--random-prompt", "1", "-n", "129"])
    lc_ctx = llama(py, a.model, a.threads, pp=8, tg=8, ctx=a.ctx, ctx_tg=32, reps=2)
    ctx_args = ["--random-prompt", "1", "-n", "33", "--fill-context", str(a.ctx), "--kv-dtype", "f16"]
    z_full = zebra_generate(a.zebra, a.model, a.threads, ctx_args)
    z_zebra = zebra_generate(a.zebra, a.model, a.threads, ctx_args + zebra_l4)
    predicted = zebra_info_kv_ratio(a.zebra, a.model, a.ctx, zebra_l4)

    rows = [
        ("prefill pp512 (tok/s)", lc_short["pp"], z_pp.get("prefill"), 2.0),
        ("decode tg128 (tok/s)", lc_short["tg"], z_tg.get("decode"), 1.2),
        (f"decode after {a.ctx} (full attention)", lc_ctx["ctx_tg"], z_full.get("decode"), 2.0),
        (f"decode after {a.ctx} (Zebra L=4 w=512)", lc_ctx["ctx_tg"], z_zebra.get("decode"), 5.0),
    ]
    print(f"{'figure':42s} {'llama.cpp':>10s} {'zebra':>10s} {'ratio':>7s} {'target':>7s}")
    result = {"threads": a.threads, "model": a.model, "ctx": a.ctx, "rows": []}
    for name, lc, z, target in rows:
        ratio = z / lc if z and lc else float("nan")
        ok = "met" if ratio >= target else "not met"
        print(f"{name:42s} {lc:10.1f} {z:10.1f} {ratio:7.2f} {target:6.1f}x  {ok}")
        result["rows"].append({"figure": name, "llama_cpp": lc, "zebra": z, "ratio": ratio, "target": target})
    if "kv_bytes" in z_zebra and "kv_bytes" in z_full:
        measured = z_zebra["kv_bytes"] / z_full["kv_bytes"]
        print(f"KV bytes at {a.ctx + 33} positions: Zebra {z_zebra['kv_bytes']}, full {z_full['kv_bytes']}, "
              f"ratio {measured:.4f}; zebra info predicts {predicted} at {a.ctx}")
        result["kv"] = {"zebra": z_zebra["kv_bytes"], "full": z_full["kv_bytes"], "ratio": measured,
                        "predicted": predicted}
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
