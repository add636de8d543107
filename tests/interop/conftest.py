"""Shared helpers of the interop suite (scripts/interop.sh): zebra and Hugging Face transformers scoring the same
tokens with the same weights.

Tolerance on per-token losses (both sides compute in float32): a loss is logsumexp(z) - z[target] over logits z.
Every stage (projection, attention, norm, residual) sums up to K float32 terms; summed in another order, the two
sides' results differ by rounding of about sqrt(K) * 2^-24 relative to the sum of magnitudes (a random walk of
K roundings of 2^-24 each), and S stages in sequence add up as a random walk too: sqrt(S * K) * 2^-24 relative
on the logits, which the loss inherits (|d loss| <= 2 max|d z|, measured relative to 1 + |loss|).
`loss_tolerance()` allows 4 times that with K = 256 (the largest of width, ffn, sequence here) and S = 8 per
layer plus the embedding and the head: 2e-5 for 4 layers, far below what a wrong mask or RoPE makes (1e-2 to 1
nats, see the controls in the tests)."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ZEBRA = os.environ.get("ZEBRA_BIN", str(ROOT / "build" / "zebra"))

torch.set_num_threads(2)


def zebra(*args, check=True):
    r = subprocess.run([ZEBRA, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"zebra {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def zebra_losses(model_dir, sequences, tmp_path, extra=()):
    """Per-token losses from `zebra eval tokens`: one list per sequence."""
    tok = Path(tmp_path) / "tokens.json"
    out = Path(tmp_path) / "zebra_losses.json"
    tok.write_text(json.dumps(sequences))
    zebra("eval", "tokens", model_dir, "--tokens", tok, "--out", out, *extra)
    return json.loads(out.read_text())["losses"]


def hf_model(model_dir, **kwargs):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager",
                                             **kwargs)
    m.eval()
    return m


def hf_losses(model, sequences):
    """Per-token losses of a transformers model: -log p(seq[j+1] | seq[..j]), float32 logits, log-softmax in
    float64 so that the comparison sees only the model's own rounding."""
    out = []
    with torch.no_grad():
        for seq in sequences:
            ids = torch.tensor([seq], dtype=torch.long)
            logits = model(input_ids=ids).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            tgt = ids[0, 1:]
            out.append((-logp[:-1].gather(1, tgt[:, None])[:, 0]).tolist())
    return out


def loss_tolerance(n_layers, k=256):
    stages = 8 * n_layers + 2
    return 4 * math.sqrt(stages * k) * 2.0 ** -24  # bound on |d loss| / (1 + |loss|)


def max_loss_diff(a, b):
    assert len(a) == len(b)
    worst = 0.0
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            worst = max(worst, abs(u - v) / (1.0 + abs(v)))
    return worst


def assert_losses_close(zebra_l, hf_l, n_layers, what):
    tol = loss_tolerance(n_layers)
    diff = max_loss_diff(zebra_l, hf_l)
    assert diff <= tol, f"{what}: max |zebra - transformers| / (1 + |loss|) = {diff:.3e} > tolerance {tol:.3e}"
    return diff


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


def random_sequences(vocab, lengths, seed=7):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def report(name, **values):
    """One line per check in the suite's log (pytest -s, or the results file)."""
    line = json.dumps({"check": name, **values})
    print(line)
    results = os.environ.get("ZEBRA_INTEROP_RESULTS")
    if results:
        with open(results, "a") as f:
            f.write(line + "\n")
