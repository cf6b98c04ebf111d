#!/usr/bin/env python3
"""An independent, deliberately plain GPT-2 encoder used as a test oracle.

usage: gpt2_reference.py encoder.json vocab.bpe < lines.jsonl > ids.jsonl
Each input line is a JSON string; each output line is the JSON list of its ids.

Pre-tokenization uses Python's `re` with the GPT-2 pattern, where \\p{L} and
\\p{N} become explicit character classes built from unicodedata categories
(L*, N*) and \\s the Unicode White_Space set. BPE is the textbook loop: merge
every occurrence of the best-ranked adjacent pair until none is left.
"""
import json
import re
import sys
import unicodedata

WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
              "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def category_class(first_letter):
    parts = []
    start = None
    for cp in range(0x110001):
        inside = cp < 0x110000 and unicodedata.category(chr(cp))[0] == first_letter
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            parts.append(re.escape(chr(start)) if start == cp - 1
                         else re.escape(chr(start)) + "-" + re.escape(chr(cp - 1)))
            start = None
    return "".join(parts)


def pattern():
    letters = category_class("L")
    numbers = category_class("N")
    ws = "".join(re.escape(c) for c in WHITESPACE)
    return re.compile(
        "'s|'t|'re|'ve|'m|'ll|'d"
        f"| ?[{letters}]+"
        f"| ?[{numbers}]+"
        f"| ?[^{ws}{letters}{numbers}]+"
        f"|[{ws}]+(?![^{ws}])"
        f"|[{ws}]+")


def byte_chars():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {}
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f.read().split("\n")[1:]:
            if line:
                a, b = line.split(" ")
                ranks.setdefault((a, b), len(ranks))
    table = byte_chars()
    regex = pattern()
    cache = {}

    def bpe(word):
        parts = list(word)
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
        return parts

    out = sys.stdout
    for line in sys.stdin:
        text = json.loads(line)
        ids = []
        for piece in regex.findall(text):
            word = "".join(table[b] for b in piece.encode("utf-8"))
            if word not in cache:
                cache[word] = [encoder[p] for p in bpe(word)]
            ids.extend(cache[word])
        out.write(json.dumps(ids) + "\n")


if __name__ == "__main__":
    main()
