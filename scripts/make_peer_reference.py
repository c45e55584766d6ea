#!/usr/bin/env python3
"""The peer reference for the kernel core's test: a random TinyLlama-shape
LlamaForCausalLM built by transformers on the GPU (bf16, seed fixed, eager
attention), saved with save_pretrained(safe_serialization=True), and its logits
for fixed token ids written as raw little-endian float32 [batch, seq, vocab] plus
reference.json (batch, seq, vocab, tokens, logits_file).

usage: make_peer_reference.py OUT_DIR [--batch 2] [--seq 64] [--seed 0] [--init-std S]
       make_peer_reference.py --sweep 0.02,0.05,0.1   (prints, writes nothing)
Then: PB_PEER_DIR=OUT_DIR build/test_gpu peer

--init-std sets transformers' initializer_range (the std of every Linear and of
the embedding); 0.006 by default, not transformers' 0.02. At 0.02 this random
22-layer model amplifies rounding noise: transformers' own bf16 forward lands
0.022 (rel error) from the fp32 forward of the same weights and picks another top
token at 2.3% of positions, with a median top-2 gap of 0.19 logit std. So no bf16
forward could meet the test's bars (2e-2, 99%): the check would measure tie-breaking
and amplified noise, not our arithmetic. At 0.006 the same comparison gives 0.010,
98.4% and a gap of 0.35 std; at 0.05 it gives 0.127 and 78% (larger weights make
attention and SwiGLU more nonlinear, which amplifies more, so a larger init, or a
scaled lm_head, which scales logits and their noise alike, does not help).
Measured on an H100, 2026-11-25. --sweep prints these figures for any list of stds:
the floor any bf16 implementation can reach on that model.
"""
import argparse
import json
import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

INIT_STD = 0.006  # see the docstring: why not transformers' 0.02


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-std", type=float, default=INIT_STD)
    ap.add_argument("--sweep", default="")
    a = ap.parse_args()
    if a.sweep:
        for std in [float(v) for v in a.sweep.split(",")]:
            sweep_one(a, std)
        return
    if not a.out:
        ap.error("OUT_DIR is required unless --sweep")
    config, model, tokens = build(a, a.init_std)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    with torch.no_grad():
        logits = model(tokens.cuda()).logits.float().cpu()
    logits.numpy().astype("<f4").tofile(os.path.join(a.out, "logits.f32"))
    # The same weights in fp32: how far bf16 arithmetic (the peer's and ours) lands from exact.
    with torch.no_grad():
        logits32 = model.float()(tokens.cuda()).logits.float().cpu()
    logits32.numpy().astype("<f4").tofile(os.path.join(a.out, "logits_fp32.f32"))
    meta = {"batch": a.batch, "seq": a.seq, "vocab": config.vocab_size, "tokens": tokens.flatten().tolist(),
            "logits_file": "logits.f32", "logits_fp32_file": "logits_fp32.f32", "dtype": "float32", "seed": a.seed,
            "initializer_range": a.init_std,
            "torch": torch.__version__, "transformers": __import__("transformers").__version__}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(meta, f)
    e, agree = compare(logits, logits32)
    print(f"wrote {a.out}: logits {tuple(logits.shape)}, init std {a.init_std}; "
          f"transformers bf16 vs fp32: rel error {e:.4g}, greedy agreement {agree:.4f}")


def compare(got, ref):
    e = (torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref)).item()
    agree = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
    return e, agree


def sweep_one(a, std):
    config, model, tokens = build(a, std)
    with torch.no_grad():
        l16 = model(tokens.cuda()).logits.float().cpu()
        l32 = model.float()(tokens.cuda()).logits.float().cpu()
    e, agree = compare(l16, l32)
    top2 = l32.topk(2, dim=-1).values
    gap = (top2[..., 0] - top2[..., 1]).median().item() / l32.std().item()
    print(f"sweep init std {std}: bf16 vs fp32 rel error {e:.4g}, greedy agreement {agree:.4f}, "
          f"median top-2 gap {gap:.3f} logit std", flush=True)
    del model
    torch.cuda.empty_cache()


def build(a, std):
    torch.manual_seed(a.seed)
    config = LlamaConfig(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
        num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
        rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False, initializer_range=std,
    )
    config._attn_implementation = "eager"
    with torch.device("cuda"):  # initialised on the GPU: a CPU init of 1.1B weights takes a while
        model = LlamaForCausalLM(config)
    model = model.to(dtype=torch.bfloat16).eval()
    g = torch.Generator().manual_seed(a.seed + 1)
    tokens = torch.randint(0, config.vocab_size, (a.batch, a.seq), generator=g)
    return config, model, tokens


if __name__ == "__main__":
    main()
