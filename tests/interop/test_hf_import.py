"""(b) Random models saved by transformers (save_pretrained, single file and sharded) load in zebra with the
same per-token losses."""

import json

import pytest
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MinistralConfig, MinistralForCausalLM, MistralConfig,
                          MistralForCausalLM)

from conftest import (assert_losses_close, hf_losses, loss_tolerance, max_loss_diff, random_sequences, report,
                      zebra_losses)

VOCAB, T = 211, 48
SMALL = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=4, num_attention_heads=6,
             num_key_value_heads=2, head_dim=8, max_position_embeddings=128, rms_norm_eps=1e-5,
             bos_token_id=1, eos_token_id=2)


def build(kind, tie):
    torch.manual_seed(0)
    if kind == "llama":
        cfg = LlamaConfig(**SMALL, tie_word_embeddings=tie)
        model = LlamaForCausalLM(cfg)
    elif kind == "mistral":
        cfg = MistralConfig(**SMALL, tie_word_embeddings=tie, sliding_window=11)
        model = MistralForCausalLM(cfg)
    else:
        cfg = MinistralConfig(**SMALL, tie_word_embeddings=tie, sliding_window=11,
                              layer_types=["full_attention", "sliding_attention", "sliding_attention",
                                           "full_attention"])
        model = MinistralForCausalLM(cfg)
    # Larger than the default init (std 0.02) so that attention is far from uniform and a wrong mask shows.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
    model.eval()
    return model


@pytest.mark.parametrize("kind", ["llama", "mistral", "ministral"])
@pytest.mark.parametrize("sharded", [False, True])
def test_transformers_model_loads_in_zebra(kind, sharded, tmp_path):
    model = build(kind, tie=(kind == "llama"))
    out = tmp_path / "model"
    model.save_pretrained(str(out), max_shard_size="20KB" if sharded else "1GB", safe_serialization=True)
    assert (out / "model.safetensors.index.json").exists() == sharded
    seqs = random_sequences(VOCAB, [T, 17])
    ref = hf_losses(model, seqs)
    got = zebra_losses(out, seqs, tmp_path)
    diff = assert_losses_close(got, ref, SMALL["num_hidden_layers"], f"{kind} sharded={sharded}")
    control = None
    if kind != "llama":
        # The check can fail: the same weights read as full attention everywhere (--group-size 1) score
        # differently, since T = 48 is past the window of 11.
        control = max_loss_diff(zebra_losses(out, seqs, tmp_path, ["--group-size", "1"]), ref)
        assert control > 100 * loss_tolerance(SMALL["num_hidden_layers"]), control
    cfg = json.loads((out / "config.json").read_text())
    report("hf_import", kind=kind, sharded=sharded, max_rel_diff=diff, full_attention_control=control,
           tokens=sum(len(s) - 1 for s in seqs),
           transformers_config_keys=sorted(k for k in cfg if "rope" in k or "sliding" in k or "layer_types" in k))
