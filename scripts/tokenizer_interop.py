"""Encodes the tokenizer-vector inputs with Hugging Face tokenizers from zebra's exported
tokenizer.json files and compares with the expected ids (see tokenizer_interop.sh)."""
import json
import os
import sys

from tokenizers import Tokenizer

SEP = "\n__ggml_vocab_test__\n"


def cases(base):
    with open(base + ".inp", encoding="utf-8") as f:
        texts = f.read().split(SEP)[:-1]
    with open(base + ".out", encoding="utf-8") as f:
        ids = [[int(x) for x in line.split()] for line in f.read().split("\n")]
    return list(zip(texts, ids))


def main(exported, vectors):
    failures = 0
    for name in sorted(os.listdir(exported)):
        path = os.path.join(exported, name, "tokenizer.json")
        if not os.path.isfile(path):
            continue
        tok = Tokenizer.from_file(path)
        ok = 0
        pairs = cases(os.path.join(vectors, "ggml-vocab-%s.gguf" % name))
        for text, want in pairs:
            got = tok.encode(text, add_special_tokens=False).ids
            back = tok.decode(got, skip_special_tokens=False)
            if got == want and back == text:
                ok += 1
            else:
                failures += 1
                print("%s: %r\n  expected %s\n  got      %s\n  decoded  %r" % (name, text[:80], want, got, back[:80]))
        print("%s: %d/%d vectors match with HF tokenizers" % (name, ok, len(pairs)))
        with open(os.path.join(exported, name, "varied.json"), encoding="utf-8") as f:
            varied = json.load(f)
        same = 0
        for case in varied:
            got = tok.encode(case["text"], add_special_tokens=False).ids
            if got == case["ids"]:
                same += 1
            else:
                failures += 1
                print("%s varied: %r\n  zebra %s\n  HF    %s" % (name, case["text"][:80], case["ids"], got))
        print("%s: %d/%d varied texts (code, digits, accents, CJK, emoji, spaces, special tokens) equal" % (name, same, len(varied)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
