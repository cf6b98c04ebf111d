#!/usr/bin/env python3
"""Writes the GGUF fuzzer's seed corpus (fuzz/corpus/gguf/*.gguf).

An independent, minimal GGUF v3 writer following ggml-org/ggml docs/gguf.md,
deliberately not QuantForge's own: the seeds double as a cross-check of the
reader (tests/formats/gguf_fuzz_corpus_test.cpp parses every seed). The files
are tiny so libFuzzer mutates them quickly, and together they reach every
value type, every plain tensor type, a block type, 0-D to 4-D tensors, a
custom alignment and version 2.

Usage: python3 fuzz/make_gguf_corpus.py [output folder]
"""
import os
import struct
import sys

# gguf_metadata_value_type
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
          BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
# ggml_type ids, bytes per block, elements per block
GGML = {"F32": (0, 4, 1), "F16": (1, 2, 1), "Q8_0": (8, 34, 32), "I8": (24, 1, 1),
        "I16": (25, 2, 1), "I32": (26, 4, 1), "I64": (27, 8, 1), "F64": (28, 8, 1), "BF16": (30, 2, 1)}


def gguf_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    if vtype == STRING:
        return gguf_string(v)
    if vtype == ARRAY:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(value(etype, x) for x in items)
    return struct.pack(SCALAR[vtype], v)


def gguf_file(kvs, tensors, version=3):
    """kvs: [(key, type, value)]; tensors: [(name, ggml type name, row-major shape)]."""
    alignment = 32
    for key, vtype, v in kvs:
        if key == "general.alignment":
            alignment = v
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, vtype, v in kvs:
        out += gguf_string(key) + struct.pack("<I", vtype) + value(vtype, v)
    blobs, offset = [], 0
    for i, (name, tname, shape) in enumerate(tensors):
        type_id, type_size, block = GGML[tname]
        count = 1
        for d in shape:
            count *= d
        nbytes = count // block * type_size
        dims = list(reversed(shape))  # ggml order: the row length first
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", type_id, offset)
        data = bytes((i * 31 + k * 7 + 3) % 251 for k in range(nbytes))
        if tname in ("F32", "F16", "BF16", "F64"):
            data = bytes(b & 0x3F for b in data)  # small finite values
        blobs.append(data)
        offset += nbytes + (-nbytes) % alignment
    out += b"\0" * ((-len(out)) % alignment)
    for data in blobs:
        out += data + b"\0" * ((-len(data)) % alignment)
    return out


def llama_model():
    """A complete model for the llama mapping: hidden 4, 2 heads of 2, 1 KV head, 1 layer."""
    h, ff, v = 4, 4, 3
    kvs = [("general.architecture", STRING, "llama"), ("llama.context_length", U32, 4),
           ("llama.embedding_length", U32, h), ("llama.block_count", U32, 1),
           ("llama.feed_forward_length", U32, ff), ("llama.attention.head_count", U32, 2),
           ("llama.attention.head_count_kv", U32, 1), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
           ("llama.rope.dimension_count", U32, 2), ("tokenizer.ggml.model", STRING, "llama"),
           ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>"])),
           ("tokenizer.ggml.bos_token_id", U32, 1)]
    tensors = [("token_embd.weight", "F32", [v, h]), ("blk.0.attn_norm.weight", "F32", [h]),
               ("blk.0.attn_q.weight", "F16", [h, h]), ("blk.0.attn_k.weight", "F32", [2, h]),
               ("blk.0.attn_v.weight", "F32", [2, h]), ("blk.0.attn_output.weight", "F32", [h, h]),
               ("blk.0.ffn_norm.weight", "F32", [h]), ("blk.0.ffn_gate.weight", "BF16", [ff, h]),
               ("blk.0.ffn_up.weight", "F32", [ff, h]), ("blk.0.ffn_down.weight", "F32", [h, ff]),
               ("output_norm.weight", "F32", [h])]
    return gguf_file(kvs, tensors)


def gpt2_model():
    """A complete model for the gpt2 mapping: hidden 4, 2 heads, 1 layer, untied head."""
    h, ff, v, n = 4, 8, 3, 4
    kvs = [("general.architecture", STRING, "gpt2"), ("gpt2.context_length", U32, n),
           ("gpt2.embedding_length", U32, h), ("gpt2.block_count", U32, 1),
           ("gpt2.feed_forward_length", U32, ff), ("gpt2.attention.head_count", U32, 2),
           ("gpt2.attention.layer_norm_epsilon", F32, 1e-5), ("tokenizer.ggml.model", STRING, "gpt2"),
           ("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "b", "ab"])),
           ("tokenizer.ggml.merges", ARRAY, (STRING, ["a b"]))]
    tensors = [("token_embd.weight", "F32", [v, h]), ("position_embd.weight", "F32", [n, h])]
    for kind, rows in (("attn_norm", None), ("attn_qkv", 3 * h), ("attn_output", h), ("ffn_norm", None),
                       ("ffn_up", ff), ("ffn_down", h)):
        cols = ff if kind == "ffn_down" else h
        bias = rows if rows else h
        tensors.append((f"blk.0.{kind}.weight", "F32", [rows, cols] if rows else [h]))
        tensors.append((f"blk.0.{kind}.bias", "F32", [bias]))
    tensors += [("output_norm.weight", "F32", [h]), ("output_norm.bias", "F32", [h]),
                ("output.weight", "F32", [v, h])]
    return gguf_file(kvs, tensors)


SEEDS = {
    "model_llama.gguf": llama_model(),
    "model_gpt2.gguf": gpt2_model(),
    "empty.gguf": gguf_file([], []),
    "metadata_every_type.gguf": gguf_file(
        [("t.u8", U8, 200), ("t.i8", I8, -3), ("t.u16", U16, 60000), ("t.i16", I16, -300),
         ("t.u32", U32, 4000000000), ("t.i32", I32, -70000), ("t.f32", F32, 0.5), ("t.bool", BOOL, True),
         ("general.name", STRING, "seed"), ("t.u64", U64, 1 << 40), ("t.i64", I64, -(1 << 40)),
         ("t.f64", F64, 2.5), ("t.arr_u32", ARRAY, (U32, [1, 2, 3])),
         ("t.arr_bool", ARRAY, (BOOL, [True, False])), ("t.arr_f64", ARRAY, (F64, [1.0])),
         ("t.arr_empty", ARRAY, (I8, []))],
        [("w", "F32", [2, 3])]),
    "tiny_llama.gguf": gguf_file(
        [("general.architecture", STRING, "llama"), ("general.alignment", U32, 16),
         ("llama.block_count", U32, 1), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
         ("tokenizer.ggml.model", STRING, "llama"),
         ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>", "\u2581a"])),
         ("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 0.0, 0.0, -1.0])),
         ("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3, 1]))],
        [("token_embd.weight", "F16", [4, 8]), ("blk.0.attn_norm.weight", "F32", [8]),
         ("blk.0.attn_q.weight", "BF16", [8, 8]), ("blk.0.extra", "F32", [2, 1, 2, 3]),
         ("scalar", "F32", []), ("empty", "F32", [0, 4])]),
    "int_and_block_types.gguf": gguf_file(
        [("general.quantization_version", U32, 2)],
        [("q", "Q8_0", [2, 32]), ("i8", "I8", [5]), ("i16", "I16", [3]), ("i32", "I32", [2, 2]),
         ("i64", "I64", [1]), ("f64", "F64", [2])]),
    "version2.gguf": gguf_file([("general.name", STRING, "v2")], [("w", "F32", [4])], version=2),
}


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gguf")
    os.makedirs(folder, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
