#!/usr/bin/env python3
"""The peer reference for the kernel core's test: a random TinyLlama-shape
LlamaForCausalLM built by transformers on the GPU (bf16, seed fixed, eager
attention), saved with save_pretrained(safe_serialization=True), and its logits
for fixed token ids written as raw little-endian float32 [batch, seq, vocab] plus
reference.json (batch, seq, vocab, tokens, logits_file).

usage: make_peer_reference.py OUT_DIR [--batch 2] [--seq 64] [--seed 0]
Then: PB_PEER_DIR=OUT_DIR build/test_gpu peer
"""
import argparse
import json
import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    config = LlamaConfig(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
        num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
        rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False,
    )
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).to(dtype=torch.bfloat16, device="cuda").eval()
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)

    g = torch.Generator().manual_seed(a.seed + 1)
    tokens = torch.randint(0, config.vocab_size, (a.batch, a.seq), generator=g)
    with torch.no_grad():
        logits = model(tokens.cuda()).logits.float().cpu()
    logits.numpy().astype("<f4").tofile(os.path.join(a.out, "logits.f32"))
    # The same weights in fp32: how far bf16 arithmetic (the peer's and ours) lands from exact.
    with torch.no_grad():
        logits32 = model.float()(tokens.cuda()).logits.float().cpu()
    logits32.numpy().astype("<f4").tofile(os.path.join(a.out, "logits_fp32.f32"))
    meta = {"batch": a.batch, "seq": a.seq, "vocab": config.vocab_size, "tokens": tokens.flatten().tolist(),
            "logits_file": "logits.f32", "logits_fp32_file": "logits_fp32.f32", "dtype": "float32", "seed": a.seed,
            "torch": torch.__version__, "transformers": __import__("transformers").__version__}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(meta, f)
    print(f"wrote {a.out}: logits {tuple(logits.shape)}")


if __name__ == "__main__":
    main()
