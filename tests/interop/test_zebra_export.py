"""(a) A checkpoint trained by zebra opens in transformers (AutoModelForCausalLM) as the same model: the same
per-token losses on the same tokens; the same check fails when the config claims LlamaForCausalLM (full
attention everywhere), so it can fail; what transformers cannot express is refused by it."""

import json
import random

import pytest

from conftest import (assert_losses_close, hf_losses, hf_model, loss_tolerance, max_loss_diff, random_sequences,
                      report, zebra, zebra_losses)

T = 32
CONFIG = {"vocab_size": 300, "hidden_size": 48, "num_hidden_layers": 4, "num_attention_heads": 6,
          "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 96, "max_position_embeddings": 32,
          "group_size": 2, "sliding_window": 8, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("zebra_data")
    rnd = random.Random(1)
    words = ("in the beginning was the word and the word was with god and all things were made by him "
             "light shineth in darkness water spirit face deep earth heaven").split()
    lines = [" ".join(rnd.choice(words) for _ in range(14)) + "." for _ in range(500)]
    (d / "corpus.txt").write_text("\n".join(lines) + "\n")
    zebra("prepare", d / "corpus.txt", "-o", d / "data", "--vocab-size", CONFIG["vocab_size"],
          "--valid-fraction", "0.1", "--quiet")
    (d / "config.json").write_text(json.dumps(CONFIG))
    return d


def train(data_dir, out, *extra, steps=30):
    zebra("train", "--data", data_dir / "data", "--config", data_dir / "config.json", "-o", out, "--steps", steps,
          "-T", T, "-b", 4, "--lr", "3e-3", "--eval-every", 0, "--log-every", 100, "--no-plot", "--threads", 1,
          *extra)
    ckpts = sorted(out.glob("checkpoint-*"))
    assert ckpts, f"no checkpoint in {out}"
    return ckpts[-1]


def eval_sequences(ckpt):
    # Text tokens would do as well; random ids in the vocabulary exercise every row of the head.
    return random_sequences(CONFIG["vocab_size"], [T, 2 * T, 9], seed=3)


def test_zebra_checkpoint_is_the_same_model_in_transformers(data_dir, tmp_path):
    ckpt = train(data_dir, tmp_path / "run")
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["architectures"] == ["MinistralForCausalLM"] and cfg["model_type"] == "ministral"
    assert cfg["layer_types"] == ["full_attention", "sliding_attention"] * 2 and cfg["sliding_window"] == 8
    seqs = eval_sequences(ckpt)
    got = zebra_losses(ckpt, seqs, tmp_path)
    model = hf_model(ckpt)
    assert type(model).__name__ == "MinistralForCausalLM"
    diff = assert_losses_close(got, hf_losses(model, seqs), CONFIG["num_hidden_layers"], "zebra checkpoint")

    # The same check against the config zebra used to write (LlamaForCausalLM): transformers runs every layer as
    # full attention and the losses differ by far more than the tolerance.
    cfg_llama = dict(cfg, architectures=["LlamaForCausalLM"], model_type="llama")
    (ckpt / "config.json").write_text(json.dumps(cfg_llama))
    wrong = max_loss_diff(got, hf_losses(hf_model(ckpt), seqs))
    assert wrong > 100 * loss_tolerance(CONFIG["num_hidden_layers"]), wrong
    report("zebra_export", pattern="GLGL", window=8, max_rel_diff=diff, as_llama_max_rel_diff=wrong,
           tolerance=loss_tolerance(CONFIG["num_hidden_layers"]))


def test_all_global_model_is_a_llama(data_dir, tmp_path):
    ckpt = train(data_dir, tmp_path / "run", "--group-size", 1, steps=5)
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and "sliding_window" not in cfg
    seqs = eval_sequences(ckpt)
    model = hf_model(ckpt)
    assert type(model).__name__ == "LlamaForCausalLM"
    diff = assert_losses_close(zebra_losses(ckpt, seqs, tmp_path), hf_losses(model, seqs),
                               CONFIG["num_hidden_layers"], "all-global checkpoint")
    report("zebra_export_llama", max_rel_diff=diff)


@pytest.mark.parametrize("pos", ["alibi", "learned", "none"])
def test_positions_transformers_cannot_express_are_refused(data_dir, tmp_path, pos):
    run = tmp_path / "run"
    r = zebra("train", "--data", data_dir / "data", "--config", data_dir / "config.json", "-o", run, "--steps", 2,
              "-T", T, "-b", 2, "--eval-every", 0, "--no-plot", "--threads", 1, "--pos-embedding", pos)
    assert "transformers refuses" in r.stderr, r.stderr
    ckpt = sorted(run.glob("checkpoint-*"))[-1]
    assert json.loads((ckpt / "config.json").read_text())["model_type"] == "zebra"
    with pytest.raises((ValueError, KeyError)):
        hf_model(ckpt)
    zebra_losses(ckpt, eval_sequences(ckpt)[:1], tmp_path)  # zebra still reads it
    report("zebra_export_refused", pos_embedding=pos)


# RoPE scaling written by zebra is read by transformers as the same model, past the original length.
@pytest.mark.parametrize("scaling,extra", [
    ("linear", ["--rope-scaling", "linear", "--rope-factor", "2"]),
    ("dynamic", ["--rope-scaling", "dynamic", "--rope-factor", "2"]),
    ("yarn", ["--rope-scaling", "yarn", "--rope-factor", "4", "--max-seq-len", "128"]),
    ("ntk", ["--rope-scaling", "ntk", "--rope-factor", "2"]),
])
def test_rope_scaling_export(data_dir, tmp_path, scaling, extra):
    ckpt = train(data_dir, tmp_path / "run", *extra, steps=5)
    seqs = random_sequences(CONFIG["vocab_size"], [3 * T], seed=5)  # past the original 32 positions
    diff = assert_losses_close(zebra_losses(ckpt, seqs, tmp_path), hf_losses(hf_model(ckpt), seqs),
                               CONFIG["num_hidden_layers"], f"rope {scaling}")
    report("zebra_export_rope", scaling=scaling, max_rel_diff=diff,
           rope_scaling=json.loads((ckpt / "config.json").read_text()).get("rope_scaling"))
