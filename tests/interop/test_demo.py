"""Demo-size check (issue 12's "Done when"): a checkpoint trained by `zebra train` (ZEBRA_DEMO_CHECKPOINT, e.g.
runs/demo/run/checkpoint-N from scripts/demo.sh) scores the same passage (ZEBRA_DEMO_PASSAGE, a text file; its
first 1000 tokens) in transformers as in zebra. Skipped when ZEBRA_DEMO_CHECKPOINT is not set."""

import json
import os
from pathlib import Path

import pytest

from conftest import assert_losses_close, hf_losses, hf_model, report, zebra_losses

CKPT = os.environ.get("ZEBRA_DEMO_CHECKPOINT")


@pytest.mark.skipif(not CKPT, reason="set ZEBRA_DEMO_CHECKPOINT to a checkpoint trained by zebra train")
def test_demo_checkpoint_scores_the_same(tmp_path):
    import sentencepiece as spm

    ckpt = Path(CKPT)
    passage_file = os.environ.get("ZEBRA_DEMO_PASSAGE")
    assert passage_file, "set ZEBRA_DEMO_PASSAGE to a text file"
    sp = spm.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model"))
    ids = [sp.bos_id()] + sp.encode(Path(passage_file).read_text())[:999]
    cfg = json.loads((ckpt / "config.json").read_text())
    got = zebra_losses(ckpt, [ids], tmp_path)
    ref = hf_losses(hf_model(ckpt), [ids])
    mean = lambda xs: sum(xs) / len(xs)
    diff = assert_losses_close(got, ref, cfg["num_hidden_layers"], "demo checkpoint")
    # What transformers scored before this export: the same weights read as a Llama (all layers global).
    (tmp_path / "as_llama").mkdir()
    for f in ckpt.iterdir():
        if f.name != "config.json":
            (tmp_path / "as_llama" / f.name).symlink_to(f.resolve())
    (tmp_path / "as_llama" / "config.json").write_text(
        json.dumps(dict(cfg, architectures=["LlamaForCausalLM"], model_type="llama")))
    as_llama = hf_losses(hf_model(tmp_path / "as_llama"), [ids])
    report("demo", checkpoint=str(ckpt), tokens=len(ids) - 1, pattern=cfg.get("layer_types"),
           window=cfg.get("sliding_window"), zebra_loss=mean(got[0]), transformers_loss=mean(ref[0]),
           transformers_as_llama_loss=mean(as_llama[0]), max_rel_diff=diff)
