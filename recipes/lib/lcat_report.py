#!/usr/bin/env python3
"""The report of recipes/lcat_smollm2.sh: OUT/report.md (tables) and, when gnuplot is installed, OUT/ppl_vs_ctx.png,
OUT/position.png, OUT/train_loss.png. Reads only what the recipe wrote (eval/<model>/{ppl,passkey}.json,
runs/<run>/metrics.jsonl, times/<phase>); a missing piece is reported as missing, never invented."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_util import load, metrics  # noqa: E402

MODELS = [
    ("base", "SmolLM2-135M as published"),
    ("relaid", "re-laid as Zebra, no training"),
    ("zebra", "Zebra after LCAT"),
    ("full", "full attention after LCAT"),
]




def main(out):
    lines = ["# LCAT of SmolLM2-135M: results of recipes/lcat_smollm2.sh", ""]
    ppl = {m: load(f"{out}/eval/{m}/ppl.json") for m, _ in MODELS}
    passkey = {m: load(f"{out}/eval/{m}/passkey.json") for m, _ in MODELS}
    for m, _ in MODELS:  # the longest prompts ran in a phase of their own (passkey_long.json)
        extra = load(f"{out}/eval/{m}/passkey_long.json")
        if passkey[m] and extra:
            passkey[m]["cells"] += extra["cells"]
            passkey[m]["correct"] += extra["correct"]
            passkey[m]["total"] += extra["total"]

    lines += ["## Models", "", "| model | what | layout | positions |", "|---|---|---|---|"]
    for m, what in MODELS:
        j = ppl[m] or passkey[m]
        if j is None:
            lines.append(f"| {m} | {what} | (not evaluated) | |")
        else:
            pos = (ppl[m] or {}).get("positions") or (passkey[m] or {}).get("positions", "?")
            lines.append(f"| {m} | {what} | {j['pattern']} (window {j['window']}) | {pos} |")

    ctxs = sorted({r["ctx"] for j in ppl.values() if j for r in j["results"]})
    lines += ["", "## Held-out perplexity by context length", "",
              "Non-overlapping windows of ctx tokens over the same held-out tokens (loss in nats/token, "
              "± its standard error over windows where there are several).", "",
              "| model | " + " | ".join(f"ctx {c}" for c in ctxs) + " |", "|---|" + "---|" * len(ctxs)]
    for m, _ in MODELS:
        if not ppl[m]:
            continue
        by = {r["ctx"]: r for r in ppl[m]["results"]}
        cells = []
        for c in ctxs:
            r = by.get(c)
            cells.append("" if r is None else f"{r['ppl']:.2f} ({r['loss']:.3f} ± {r['loss_stderr']:.3f})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")

    lengths = sorted({c["length"] for j in passkey.values() if j for c in j["cells"]})
    lines += ["", "## Passkey retrieval", "", "Correct / trials per length, over all depths (heat maps: "
              "passkey_<model>.png).", "",
              "| model | " + " | ".join(f"{n}" for n in lengths) + " | all |", "|---|" + "---|" * (len(lengths) + 1)]
    for m, _ in MODELS:
        j = passkey[m]
        if not j:
            continue
        cells = []
        for n in lengths:
            cs = [c for c in j["cells"] if c["length"] == n]
            cells.append(f"{sum(c['correct'] for c in cs)}/{sum(c['trials'] for c in cs)}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {j['correct']}/{j['total']} |")
    for m, _ in MODELS:
        j = passkey[m]
        if not j:
            continue
        lines += ["", f"{m}: depth x length (1 = found)", "", "| depth | " + " | ".join(map(str, lengths)) + " |",
                  "|---|" + "---|" * len(lengths)]
        for d in sorted({c["depth"] for c in j["cells"]}):
            row = {c["length"]: c for c in j["cells"] if c["depth"] == d}
            lines.append(f"| {d} | " + " | ".join(
                f"{row[n]['accuracy']:.2f}" if n in row else "" for n in lengths) + " |")

    lines += ["", "## Training", "", "| run | steps | tokens | tokens/s | first loss | last loss | "
              "mean loss long | mean loss short | short micro-batches |", "|---|---|---|---|---|---|---|---|---|"]
    speeds = {}
    for run in ("zebra", "full"):
        rows = metrics(f"{out}/runs/{run}/metrics.jsonl")
        steps = [r for r in rows if "loss" in r]
        if not steps:
            lines.append(f"| {run} | (not trained) | | | | | | | |")
            continue
        kinds = [r for r in rows if "loss_long" in r or "loss_short" in r]
        longs = [r["loss_long"] for r in kinds if "loss_long" in r]
        shorts = [r["loss_short"] for r in kinds if "loss_short" in r]
        # tokens/s of the last record of each sitting (it is cumulative within a sitting); the run's figure is
        # the token-weighted mean over sittings.
        sittings, prev = [], None
        for r in steps:
            if prev is not None and r["elapsed_s"] < prev["elapsed_s"]:
                sittings.append(prev)
            prev = r
        sittings.append(prev)
        tok = sum(s["tokens_per_s"] * s["elapsed_s"] for s in sittings)
        sec = sum(s["elapsed_s"] for s in sittings)
        speeds[run] = tok / sec if sec > 0 else float("nan")
        mean = lambda v: f"{sum(v) / len(v):.4f}" if v else "-"
        lines.append(f"| {run} | {steps[-1]['step']} | {steps[-1]['tokens']} | {speeds[run]:.1f} | "
                     f"{steps[0]['loss']:.4f} | {steps[-1]['loss']:.4f} | {mean(longs)} | {mean(shorts)} | "
                     f"{len(shorts)} of {len(steps)} steps |")
    if "zebra" in speeds and "full" in speeds:
        lines += ["", f"Training speed at the same T, same run of the recipe: Zebra {speeds['zebra']:.1f} tokens/s, "
                      f"full attention {speeds['full']:.1f} tokens/s, ratio {speeds['zebra'] / speeds['full']:.2f}."]

    lines += ["", "## Budget", "", "| phase | seconds |", "|---|---|"]
    total = 0
    tdir = f"{out}/times"
    for name in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
        with open(f"{tdir}/{name}") as f:
            s = int(f.read().strip() or 0)
        total += s
        lines.append(f"| {name} | {s} |")
    lines.append(f"| total | {total} ({total / 60:.1f} min) |")

    with open(f"{out}/report.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    if shutil.which("gnuplot"):
        plots(out, ppl)
        for m, _ in MODELS:
            if passkey[m]:
                heatmap(out, m, passkey[m])


def heatmap(out, m, j):
    lengths = sorted({c["length"] for c in j["cells"]})
    depths = sorted({c["depth"] for c in j["cells"]})
    dat = f"{out}/passkey_{m}.dat"
    with open(dat, "w") as f:
        for c in j["cells"]:
            f.write(f"{lengths.index(c['length'])} {depths.index(c['depth'])} {c['accuracy']}\n")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(lengths))
    yt = ", ".join(f'"{d}" {i}' for i, d in enumerate(depths))
    script = f"""set terminal pngcairo size 700,420
set output '{out}/passkey_{m}.png'
set title 'passkey accuracy: {m} ({j["pattern"].count("G")} of {len(j["pattern"])} layers global)'
set xlabel 'prompt length (tokens)'
set ylabel 'depth of the key'
set xtics ({xt})
set ytics ({yt})
set xrange [-0.5:{len(lengths) - 0.5}]
set yrange [-0.5:{len(depths) - 0.5}]
set cbrange [0:1]
set palette defined (0 'white', 1 'dark-green')
plot '{dat}' using 1:2:3 with image notitle, '{dat}' using 1:2:(sprintf('%.2f', $3)) with labels notitle
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)


def plots(out, ppl):
    dat = f"{out}/ppl_vs_ctx.dat"
    with open(dat, "w") as f:
        for m, _ in MODELS:
            if not ppl[m]:
                continue
            f.write(f'"{m}"\n')
            for r in ppl[m]["results"]:
                f.write(f"{r['ctx']} {r['ppl']}\n")
            f.write("\n\n")
    pos = f"{out}/position.dat"
    with open(pos, "w") as f:
        for m, _ in MODELS:
            if not ppl[m]:
                continue
            longest = max(ppl[m]["results"], key=lambda r: r["ctx"])
            f.write(f'"{m}"\n')
            # Mean loss over blocks of 1024 positions (position p predicts token p from the p before it).
            loss, count = longest["position_loss"], longest["position_count"]
            for b0 in range(0, len(loss), 1024):
                pairs = [(l, c) for l, c in zip(loss[b0:b0 + 1024], count[b0:b0 + 1024]) if l is not None and c]
                n = sum(c for _, c in pairs)
                if n:
                    f.write(f"{b0 + 512} {sum(l * c for l, c in pairs) / n}\n")
            f.write("\n\n")
    n = sum(1 for m, _ in MODELS if ppl[m])
    script = f"""set terminal pngcairo size 900,560
set output '{out}/ppl_vs_ctx.png'
set logscale x 2
set xlabel 'context length (tokens)'
set ylabel 'held-out perplexity'
set title 'SmolLM2-135M: perplexity against context length'
set key top left
plot for [i=0:{n - 1}] '{dat}' index i using 1:2 with linespoints title columnheader(1)
set output '{out}/position.png'
unset logscale x
set xlabel 'position in the window (tokens)'
set ylabel 'mean loss over 1024 positions (nats/token)'
set title 'loss against position in a 32k window of a held-out book'
set key top left
plot for [i=0:{n - 1}] '{pos}' index i using 1:2 with linespoints title columnheader(1)
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)


if __name__ == "__main__":
    main(sys.argv[1])
