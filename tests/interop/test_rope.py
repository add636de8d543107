"""(c) Each RoPE scaling variant: zebra's inv_freq and cos/sin (zebra info --rope-json) against transformers'
ROPE_INIT_FUNCTIONS and its rotary embedding module, for a config that transformers itself saved; and a random
model with that RoPE, saved by transformers, scores the same in zebra past the original length.

Tolerances: transformers computes base ** (2k/d) in float32, exp(x ln b) with relative error about
(|x ln b| + 1) 2^-24 <= 12 * 6e-8 for b <= 1e6, so inv_freq agrees to rel 2e-6 (zebra computes in double).
An angle pos * inv_freq then differs by up to pos * inv_freq * 2e-6 + float32 rounding of the product
(pos * inv_freq * 2^-24), and cos/sin (times the attention factor a) by a * (that + 2^-24)."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from conftest import assert_losses_close, hf_losses, random_sequences, report, zebra, zebra_losses

T = 96  # past the original 32 positions
VARIANTS = {
    "default": dict(max_position_embeddings=32, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "linear": dict(max_position_embeddings=32,
                   rope_parameters={"rope_type": "linear", "factor": 3.0, "rope_theta": 10000.0}),
    "dynamic": dict(max_position_embeddings=32,
                    rope_parameters={"rope_type": "dynamic", "factor": 2.5, "rope_theta": 10000.0}),
    "yarn": dict(max_position_embeddings=128,
                 rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                                  "rope_theta": 10000.0}),
    "yarn_betas": dict(max_position_embeddings=256,
                       rope_parameters={"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32,
                                        "beta_fast": 16.0, "beta_slow": 2.0, "attention_factor": 1.3,
                                        "truncate": False, "rope_theta": 500000.0}),
}
SMALL = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5, tie_word_embeddings=False)


def hf_config(name):
    return LlamaConfig(**SMALL, **VARIANTS[name])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_inv_freq_and_table_match_transformers(name, tmp_path):
    cfg = hf_config(name)
    cfg.save_pretrained(str(tmp_path))
    out = tmp_path / "rope.json"
    zebra("info", tmp_path, "--seq-len", T, "--rope-json", out)
    z = json.loads(out.read_text())
    rope_type = cfg.rope_parameters["rope_type"]
    model = LlamaForCausalLM(cfg)
    rot = model.model.rotary_emb
    if rope_type == "default":
        inv_freq, factor = rot.inv_freq, rot.attention_scaling
    else:
        inv_freq, factor = ROPE_INIT_FUNCTIONS[rope_type](cfg, "cpu", seq_len=T)
    zf = torch.tensor(z["inv_freq"], dtype=torch.float64)
    rel = ((zf - inv_freq.double()).abs() / inv_freq.double()).max().item()
    assert rel <= 2e-6, f"{name}: inv_freq relative difference {rel:.3e}"
    assert abs(z["attention_factor"] - factor) <= 1e-12, (z["attention_factor"], factor)

    # cos/sin of a forward pass over positions [0, T) (dynamic recomputes its frequencies there).
    x = torch.zeros(1, T, SMALL["head_dim"])
    cos, sin = rot(x, torch.arange(T)[None, :])
    half = SMALL["head_dim"] // 2
    zc = torch.tensor(z["cos"], dtype=torch.float64)
    zs = torch.tensor(z["sin"], dtype=torch.float64)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * zf[None, :]
    tol = factor * (angle * (2e-6 + 2.0 ** -24) + 2.0 ** -24) + 1e-7
    dc = (zc - cos[0, :, :half].double()).abs()
    ds = (zs - sin[0, :, :half].double()).abs()
    assert (dc <= tol).all() and (ds <= tol).all(), f"{name}: cos {dc.max():.3e}, sin {ds.max():.3e}"
    report("rope_table", variant=name, inv_freq_max_rel_diff=rel, cos_sin_max_abs_diff=max(dc.max().item(),
           ds.max().item()), attention_factor=factor)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_model_with_scaled_rope_loads_in_zebra(name, tmp_path):
    torch.manual_seed(0)
    model = LlamaForCausalLM(hf_config(name))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
    model.eval()
    model.save_pretrained(str(tmp_path / "m"))
    seqs = random_sequences(SMALL["vocab_size"], [T], seed=11)
    diff = assert_losses_close(zebra_losses(tmp_path / "m", seqs, tmp_path), hf_losses(model, seqs),
                               SMALL["num_hidden_layers"], f"rope {name}")
    report("rope_model", variant=name, max_rel_diff=diff)
