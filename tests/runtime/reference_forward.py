#!/usr/bin/env python3
"""Independent numpy reference forward pass for the QuantForge model tests.

Usage: reference_forward.py MODEL_DIR TOKENS OUT
  MODEL_DIR  a Hugging Face folder: config.json + model.safetensors
  TOKENS     comma-separated token ids
  OUT        written as raw little-endian float32 logits [len(TOKENS), vocab]

Written from the Hugging Face model definitions (LlamaForCausalLM,
Qwen2ForCausalLM, MistralForCausalLM, GPT2LMHeadModel) and the safetensors
format description, sharing no code with the C++ implementation. It reads the
safetensors file itself and computes in float64.
"""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = body[begin:end]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif dtype == "F64":
            arr = np.frombuffer(raw, dtype="<f8")
        elif dtype == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit("unsupported dtype %s for %s" % (dtype, name))
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def causal_attention(q, k, v, n_heads, n_kv_heads, head_dim, window=0):
    # q [T, n_heads*hd], k/v [T, n_kv*hd] -> [T, n_heads*hd]
    T = q.shape[0]
    group = n_heads // n_kv_heads
    q = q.reshape(T, n_heads, head_dim).transpose(1, 0, 2)
    k = k.reshape(T, n_kv_heads, head_dim).transpose(1, 0, 2)
    v = v.reshape(T, n_kv_heads, head_dim).transpose(1, 0, 2)
    k = np.repeat(k, group, axis=0)  # kv head j serves query heads j*group .. j*group+group-1
    v = np.repeat(v, group, axis=0)
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(head_dim)
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    mask = j > i
    if window:
        mask |= j <= i - window
    scores = np.where(mask[None], -np.inf, scores)
    out = softmax(scores) @ v  # [heads, T, hd]
    return out.transpose(1, 0, 2).reshape(T, n_heads * head_dim)


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x, n_heads, head_dim, theta):
    T = x.shape[0]
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    freqs = np.outer(np.arange(T, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)  # [T, hd]
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    x = x.reshape(T, n_heads, head_dim)
    return (x * cos + rotate_half(x) * sin).reshape(T, n_heads * head_dim)


def llama_forward(cfg, W, tokens):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or H // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
    window = (cfg.get("sliding_window") or 0) if cfg["model_type"] == "mistral" else 0
    x = W["model.embed_tokens.weight"][tokens]
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = h @ W[p + "self_attn.q_proj.weight"].T
        k = h @ W[p + "self_attn.k_proj.weight"].T
        v = h @ W[p + "self_attn.v_proj.weight"].T
        if bias:
            q = q + W[p + "self_attn.q_proj.bias"]
            k = k + W[p + "self_attn.k_proj.bias"]
            v = v + W[p + "self_attn.v_proj.bias"]
        q = apply_rope(q, nh, hd, theta)
        k = apply_rope(k, nkv, hd, theta)
        a = causal_attention(q, k, v, nh, nkv, hd, window)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else W["lm_head.weight"]
    return x @ head.T


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def gpt2_forward(cfg, W, tokens):
    W = {(k[len("transformer."):] if k.startswith("transformer.") else k): v for k, v in W.items()}
    H = cfg["n_embd"]
    nh = cfg["n_head"]
    hd = H // nh
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = len(tokens)
    x = W["wte.weight"][tokens] + W["wpe.weight"][np.arange(T)]
    for i in range(cfg["n_layer"]):
        p = "h.%d." % i
        h = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]  # Conv1D: x @ W
        q, k, v = qkv[:, :H], qkv[:, H:2 * H], qkv[:, 2 * H:]
        a = causal_attention(q, k, v, nh, nh, hd)
        x = x + a @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        h = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        f = gelu_new(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        x = x + f @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = layer_norm(x, W["ln_f.weight"], W["ln_f.bias"], eps)
    head = W["wte.weight"] if cfg.get("tie_word_embeddings", True) else W["lm_head.weight"]
    return x @ head.T


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    folder, tokens_arg, out_path = sys.argv[1:]
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    W = read_safetensors(os.path.join(folder, "model.safetensors"))
    tokens = np.array([int(t) for t in tokens_arg.split(",")], dtype=np.int64)
    if cfg["model_type"] in ("llama", "mistral", "qwen2"):
        logits = llama_forward(cfg, W, tokens)
    elif cfg["model_type"] == "gpt2":
        logits = gpt2_forward(cfg, W, tokens)
    else:
        raise SystemExit("unsupported model_type " + cfg["model_type"])
    logits.astype("<f4").tofile(out_path)


if __name__ == "__main__":
    main()
