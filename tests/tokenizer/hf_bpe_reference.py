#!/usr/bin/env python3
"""An independent, deliberately plain encoder for Llama-style Hugging Face
tokenizer.json files (BPE model, normalizer Prepend U+2581 + Replace ' ' ->
U+2581, no pre-tokenizer, byte_fallback), used as a test oracle.

usage: hf_bpe_reference.py tokenizer.json < lines.jsonl > ids.jsonl
Each input line is a JSON string; each output line is the JSON list of its ids
(without BOS). The normalized text is one word; BPE merges every occurrence of
the best-ranked adjacent pair until none is left; characters missing from the
vocabulary become <0xNN> byte tokens.
"""
import json
import sys

SPACE = "\u2581"


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        model = json.load(f)["model"]
    vocab = model["vocab"]
    ranks = {}
    for m in model["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        ranks.setdefault((a, b), len(ranks))

    def encode(text):
        if not text:
            return []
        parts = list(SPACE + text.replace(" ", SPACE))
        while len(parts) > 1:
            best = None
            for pair in zip(parts, parts[1:]):
                r = ranks.get(pair)
                if r is not None and (best is None or r < ranks[best]):
                    best = pair
            if best is None:
                break
            merged = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = []
        for p in parts:
            if p in vocab:
                ids.append(vocab[p])
            else:
                ids.extend(vocab["<0x%02X>" % b] for b in p.encode("utf-8"))
        return ids

    for line in sys.stdin:
        sys.stdout.write(json.dumps(encode(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
