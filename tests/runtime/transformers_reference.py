"""transformers as the reference forward pass of every architecture we run.

Usage: transformers_reference.py SPEC.json OUT_DIR

SPEC.json: {"config": {...kwargs of AutoConfig.for_model, with "model_type"},
            "tokens": [ids], "seed": int}, or {"load": true, "tokens": [ids]} to
load the model already in OUT_DIR (a folder qforge wrote) with from_pretrained.
Builds a tiny random-weight model from the config alone (never the hub),
re-draws every weight with a fixed seed so that norms, biases and scales are
far from their neutral initial values (a wrong norm kind or a missing bias
then shows in the logits), saves it with save_pretrained (safetensors +
config.json) into OUT_DIR, and writes the float32 logits [tokens, vocab] of
one forward pass over the tokens to OUT_DIR/logits.f32.
"""
import json
import math
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    spec = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    if spec.get("load"):
        model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
        write_logits(model, spec["tokens"], out)
        return
    kwargs = dict(spec["config"])
    model_type = kwargs.pop("model_type")
    config = AutoConfig.for_model(model_type, **kwargs)
    torch.manual_seed(spec.get("seed", 0))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    gen = torch.Generator().manual_seed(spec.get("seed", 0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                # Norm weights and biases: around their initial value (1 for
                # norms, 0 for Gemma's offsets and for biases).
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
            elif "embed" in name or name.endswith("wte.weight") or name.endswith("wpe.weight"):
                # Gemma multiplies the embedding by sqrt(hidden) (and ties the
                # head to it): unit-size rows there would give one-hot logits
                # that no disagreement could move.
                scale = 1.0 / math.sqrt(p.shape[1]) if model_type.startswith("gemma") else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
            else:
                fan_in = p.shape[0] if model_type == "gpt2" else p.shape[1]
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    write_logits(model, spec["tokens"], out)


def write_logits(model, tokens, out):
    model.eval()
    ids = torch.tensor([tokens], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].to(torch.float32)
    logits.contiguous().numpy().tofile(out + "/logits.f32")


if __name__ == "__main__":
    main()
