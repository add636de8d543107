"""Encodes the tokenizer-vector inputs with Hugging Face tokenizers from zebra's exported
tokenizer.json files and compares with the expected ids (see tokenizer_interop.sh)."""
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
        print("%s: %d/%d match with HF tokenizers" % (name, ok, len(pairs)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
