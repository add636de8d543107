#!/usr/bin/env python3
"""The report of recipes/lit_smollm2.sh: OUT/report.md and, when gnuplot is installed, OUT/accuracy.png. Reads only
what the recipe wrote (eval/<model>/tasks.json, runs/<run>/metrics.jsonl, times/<phase>, chat.txt); a missing piece
is reported as missing, never invented."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_util import load, metrics  # noqa: E402

MODELS = [
    ("zebra-lcat", "Zebra after LCAT (before LIT)"),
    ("zebra-lit", "Zebra after LIT"),
    ("full-lcat", "full attention after LCAT (before LIT)"),
    ("full-lit", "full attention after LIT"),
]




def cell(rows, **keys):
    sel = [r for r in rows if all(r[k] == v for k, v in keys.items())]
    return sum(r["correct"] for r in sel), len(sel)


def main(out):
    evals = {m: load(os.path.join(out, "eval", m, "tasks.json")) for m, _ in MODELS}
    lines = ["# LIT of the LCAT models: results of recipes/lit_smollm2.sh", ""]
    present = [m for m, _ in MODELS if evals[m]]
    lengths = sorted({o["length"] for m in present for o in evals[m]["outputs"]})
    kinds = []
    for m in present:
        for o in evals[m]["outputs"]:
            if o["kind"] not in kinds:
                kinds.append(o["kind"])
    lines += ["## Accuracy on held-out tasks by prompt length (correct / tasks)", "",
              "| model | " + " | ".join(str(n) for n in lengths) + " | all |",
              "| --- |" + " --- |" * (len(lengths) + 1)]
    for m, label in MODELS:
        e = evals[m]
        if not e:
            lines.append(f"| {label} | missing |")
            continue
        rows = e["outputs"]
        cells = [cell(rows, length=n) for n in lengths] + [cell(rows)]
        lines.append(f"| {label} | " + " | ".join(f"{c}/{n}" for c, n in cells) + " |")
    lines += ["", "## By kind (all lengths)", "", "| model | " + " | ".join(kinds) + " |",
              "| --- |" + " --- |" * len(kinds)]
    for m, label in MODELS:
        e = evals[m]
        if e:
            lines.append(f"| {label} | " + " | ".join("%d/%d" % cell(e["outputs"], kind=k) for k in kinds) + " |")
    lines += ["", "## Replies (first 60 characters)", ""]
    for m, label in MODELS:
        e = evals[m]
        if not e:
            continue
        lines += [f"### {label}", "", "| kind | length | answer | reply | correct |", "| --- | --- | --- | --- | --- |"]
        for o in e["outputs"]:
            esc = lambda s: s[:60].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {o['kind']} | {o['length']} | {esc(o['answer'])} | {esc(o['reply'])} | {o['correct']} |")
        lines.append("")
    prep = load(os.path.join(out, "data", "prepare.json"))
    share = ""
    if prep:
        t = prep["train"]
        share = (f" {t['scored_tokens']} of the {t['tokens']} training tokens are answers "
                 f"({100.0 * t['scored_tokens'] / max(t['tokens'], 1):.2f}%), so a step scores few tokens.")
    lines += ["## Training", "", "Loss: the answer-only training loss, mean of the first and of the last five steps "
              "(single steps are noisy)." + share, "",
              "| run | steps | tokens | tokens/s (all tokens of a row) | loss, steps 1-5 | loss, last 5 steps |",
              "| --- | --- | --- | --- | --- | --- |"]
    for run in ("zebra", "full"):
        steps = [r for r in metrics(os.path.join(out, "runs", run, "metrics.jsonl")) if "loss" in r]
        if not steps:
            lines.append(f"| {run} | missing |")
            continue
        tok_s = sum(s["tokens_per_s"] * s["elapsed_s"] for s in steps) / max(sum(s["elapsed_s"] for s in steps), 1e-9)
        first = sum(s["loss"] for s in steps[:5]) / len(steps[:5])
        last = sum(s["loss"] for s in steps[-5:]) / len(steps[-5:])
        lines.append(f"| {run} | {steps[-1]['step']} | {steps[-1]['tokens']} | {tok_s:.0f} | {first:.3f} | {last:.3f} |")
    lines += ["", "## Phase times (s)", "", "| phase | seconds |", "| --- | --- |"]
    times = os.path.join(out, "times")
    total = 0
    for name in sorted(os.listdir(times)) if os.path.isdir(times) else []:
        with open(os.path.join(times, name)) as f:
            s = int(f.read().strip() or 0)
        total += s
        lines.append(f"| {name} | {s} |")
    lines += [f"| total | {total} |", ""]
    chat = os.path.join(out, "chat.txt")
    if os.path.exists(chat):
        with open(chat) as f:
            lines += ["## Chat with zebra-lit (replies)", "", "```", f.read().rstrip(), "```", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")

    if shutil.which("gnuplot") and present:
        script = []
        for i, m in enumerate(present):
            script.append(f"$m{i} << EOD")
            for n in lengths:
                c, t = cell(evals[m]["outputs"], length=n)
                if t:
                    script.append(f"{n} {c / t}")
            script.append("EOD")
        script += ["set terminal pngcairo size 900,540", f"set output '{os.path.join(out, 'accuracy.png')}'",
                   "set title 'held-out long-context tasks: accuracy before and after LIT'",
                   "set xlabel 'prompt length (tokens)'", "set ylabel 'accuracy'", "set logscale x 2",
                   "set yrange [-0.05:1.05]", "set grid", "set key below"]
        labels = dict(MODELS)
        script.append("plot " + ", ".join(f"$m{i} using 1:2 with linespoints lw 2 title '{labels[m]}'"
                                          for i, m in enumerate(present)))
        subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True, check=False)


if __name__ == "__main__":
    main(sys.argv[1])
