#!/usr/bin/env python3
"""The references of the peer test (tests/gpu/test_peer_transformers.cu): small
random LlamaForCausalLM models built by transformers, and what transformers
computes with them, loaded back from the saved checkpoint in bf16 and in fp32
(the same bf16 weights, upcast), so that the test can judge our bf16 arithmetic
against the exact forward, next to transformers' own bf16 arithmetic.

usage: make_peer_reference.py OUT_DIR [--device cuda] [--cases NAME,...] [--reuse]
  --reuse  write nothing if OUT_DIR/cases.json already lists these cases, written
           by this script as it is now (cases.json records the script's sha256)

Cases: two shapes, each at init std 0.006 and 0.02 (transformers'
initializer_range: the std of every Linear and of the embedding) and seeds 0 and 1:
  llama2  hidden 512, 8 heads of 64, no GQA, untied lm_head, rope theta 1e4
  llama3  hidden 512, 4 heads of 128, 1 kv head (GQA), tied embeddings,
          rope theta 5e5 with llama3 scaling (original 64 positions, so all
          three frequency bands occur in 288 positions)
named SHAPE-stdSTD-seedSEED (llama2-std0.02-seed1).

OUT_DIR/cases.json lists the cases; OUT_DIR/CASE/ holds config.json and
model.safetensors (save_pretrained), reference.json, and raw little-endian float32
logits, row-major [rows, vocab]:
  prefill_bf16.f32, prefill_fp32.f32  the forward of `prefill.tokens` ([batch, seq]),
                                      transformers in bf16 and in fp32
  decode_fp32.f32    generate() in fp32, greedy, 32 new tokens after each prompt
                     of `decode.prompt` ([batch, prompt_len]): the raw logits that
                     chose each token, [batch, steps] rows
  decode_bf16.f32    transformers' bf16 logits at those same positions, computed by
                     one bf16 forward of prompt + fp32 tokens (the same contexts)
and in reference.json decode.tokens_fp32 (the fp32 generate's tokens) and
decode.tokens_bf16 (transformers' own bf16 generate, free running), and
rope_inv_freq, the rotary frequencies both of transformers' forwards used (fp32,
from config.json: the CPU test checks them against the project's own).

Attention is eager; fp32 matmuls use full precision (no TF32). The test's verdict
(tests/gpu/peer_criterion.h) is made in C; this script only prints transformers'
own bf16 error and greedy agreement against fp32 for each case.
"""
import argparse
import hashlib
import inspect
import json
import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "llama2": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
                   num_key_value_heads=8, vocab_size=4096, tie_word_embeddings=False),
    "llama3": dict(hidden_size=512, intermediate_size=1792, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=1, vocab_size=4096, tie_word_embeddings=True),
}
ROPE = {
    "llama2": {"rope_type": "default", "rope_theta": 10000.0},
    "llama3": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
}
STDS = (0.006, 0.02)
SEEDS = (0, 1)
PREFILL_BATCH, PREFILL_SEQ = 8, 256
DECODE_BATCH, PROMPT_LEN, DECODE_STEPS = 4, 16, 32


def case_names():
    return [f"{shape}-std{std}-seed{seed}" for shape in SHAPES for std in STDS for seed in SEEDS]


def parse_case(name):
    shape, std, seed = name.split("-")
    return shape, float(std[len("std"):]), int(seed[len("seed"):])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cases", default=",".join(case_names()), help="comma-separated case names")
    ap.add_argument("--reuse", action="store_true", help="keep OUT_DIR if it holds these cases from this script")
    a = ap.parse_args()
    names = a.cases.split(",")
    for n in names:
        if n not in case_names():
            ap.error(f"--cases: unknown case {n!r} (known: {', '.join(case_names())})")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no GPU (use --device cpu)")
    with open(__file__, "rb") as f:
        script_sha = hashlib.sha256(f.read()).hexdigest()
    index = os.path.join(a.out, "cases.json")
    if a.reuse and os.path.exists(index):
        with open(index) as f:
            old = json.load(f)
        if old.get("cases") == names and old.get("script_sha256") == script_sha:
            print(f"{a.out}: already holds these {len(names)} cases from this script; kept")
            return
    torch.set_float32_matmul_precision("highest")
    os.makedirs(a.out, exist_ok=True)
    if os.path.exists(index):
        os.remove(index)  # written last: present only when every case is complete
    for n in names:
        write_case(os.path.join(a.out, n), n, torch.device(a.device))
    write_json(index, {"cases": names, "script_sha256": script_sha})


def rope_kwargs(shape):
    """transformers 5 takes rope_parameters; 4.x took rope_theta and rope_scaling."""
    rope = dict(ROPE[shape])
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:
        return {"rope_parameters": rope}
    theta = rope.pop("rope_theta")
    return {"rope_theta": theta, "rope_scaling": rope if rope["rope_type"] != "default" else None}


def check_rope(path, shape):
    """The written config.json must carry the rope we asked for: our side reads it from there."""
    with open(path) as f:
        cfg = json.load(f)
    got = cfg.get("rope_parameters") or dict(cfg.get("rope_scaling") or {}, rope_theta=cfg.get("rope_theta"))
    want = ROPE[shape]
    if any(got.get(k, "default" if k == "rope_type" else None) != v for k, v in want.items()):
        raise SystemExit(f"make_peer_reference.py: {path}: rope settings {got} are not the requested {want}")


def build(shape, std, seed, device, out):
    """A random model (seeded) saved into OUT in bf16, then loaded back twice, as a
    user loads a checkpoint: in bf16, and in fp32 (the same bf16 values, upcast).
    Loaded rather than cast with model.to(dtype): .to casts every floating buffer,
    the rotary inv_freq among them, so both forwards would rotate by frequencies
    rounded to bf16 that neither config.json nor a loaded model has, and a forward
    with the true frequencies (ours) would be judged against the wrong fp32 truth
    (issue 25: 7% of the error bar on the llama3 shape at init std 0.02)."""
    config = LlamaConfig(max_position_embeddings=1024, rms_norm_eps=1e-5, hidden_act="silu",
                         initializer_range=std, bos_token_id=None, eos_token_id=None, pad_token_id=None,
                         **SHAPES[shape], **rope_kwargs(shape))
    torch.manual_seed(seed)
    with device:
        model = LlamaForCausalLM(config)
    model.to(dtype=torch.bfloat16).save_pretrained(out, safe_serialization=True)
    del model
    bf16, fp32 = (load(out, dtype, device) for dtype in (torch.bfloat16, torch.float32))
    for m in (bf16, fp32):
        inv_freq = m.model.rotary_emb.inv_freq
        if inv_freq.dtype != torch.float32 or not torch.equal(inv_freq, bf16.model.rotary_emb.inv_freq):
            raise SystemExit(f"make_peer_reference.py: {out}: the loaded models' rotary inv_freq is not the "
                             f"same fp32 tensor (got {inv_freq.dtype})")
    return bf16.config, bf16, fp32


def load(path, dtype, device):
    """from_pretrained in `dtype`, eager attention; transformers 4.x named the argument torch_dtype."""
    key = "dtype" if int(__import__("transformers").__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = LlamaForCausalLM.from_pretrained(path, attn_implementation="eager", **{key: dtype}).to(device).eval()
    if any(p.dtype != dtype for p in model.parameters()):
        raise SystemExit(f"make_peer_reference.py: {path}: from_pretrained did not load every weight in {dtype}")
    return model


@torch.no_grad()
def write_case(out, name, device):
    shape, std, seed = parse_case(name)
    os.makedirs(out, exist_ok=True)
    config, bf16, fp32 = build(shape, std, seed, device, out)
    check_rope(os.path.join(out, "config.json"), shape)
    V = config.vocab_size
    g = torch.Generator().manual_seed(1000 + seed)
    tokens = torch.randint(0, V, (PREFILL_BATCH, PREFILL_SEQ), generator=g)
    prompt = torch.randint(0, V, (DECODE_BATCH, PROMPT_LEN), generator=g)

    p16 = bf16(tokens.to(device)).logits.float().cpu()
    p32 = fp32(tokens.to(device)).logits.float().cpu()
    save_f32(os.path.join(out, "prefill_bf16.f32"), p16)
    save_f32(os.path.join(out, "prefill_fp32.f32"), p32)

    tok32, d32 = generate(fp32, prompt, device)
    tok16, _ = generate(bf16, prompt, device)
    # transformers' bf16 logits in the fp32 run's contexts: position PROMPT_LEN - 1 + t chooses token t
    context = torch.cat([prompt, tok32[:, :-1]], dim=1).to(device)
    d16 = bf16(context).logits.float().cpu()[:, PROMPT_LEN - 1:]
    save_f32(os.path.join(out, "decode_fp32.f32"), d32)
    save_f32(os.path.join(out, "decode_bf16.f32"), d16)

    write_json(os.path.join(out, "reference.json"), {
        "case": name, "shape": shape, "initializer_range": std, "seed": seed, "vocab": V,
        "prefill": {"batch": PREFILL_BATCH, "seq": PREFILL_SEQ, "tokens": tokens.flatten().tolist(),
                    "logits_bf16": "prefill_bf16.f32", "logits_fp32": "prefill_fp32.f32"},
        "decode": {"batch": DECODE_BATCH, "prompt_len": PROMPT_LEN, "steps": DECODE_STEPS,
                   "prompt": prompt.flatten().tolist(), "tokens_fp32": tok32.flatten().tolist(),
                   "tokens_bf16": tok16.flatten().tolist(),
                   "logits_fp32": "decode_fp32.f32", "logits_bf16": "decode_bf16.f32"},
        "rope_inv_freq": bf16.model.rotary_emb.inv_freq.float().cpu().tolist(),
        "attention": "eager", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
    })
    e = (torch.linalg.vector_norm(p16 - p32) / torch.linalg.vector_norm(p32)).item()
    agree = (p16.argmax(-1) == p32.argmax(-1)).float().mean().item()
    same = (tok16 == tok32).all(dim=1).sum().item()
    print(f"{name}: transformers bf16 vs fp32 prefill rel error {e:.4g}, greedy agreement {agree:.4f} "
          f"over {p16.shape[0] * p16.shape[1]} positions; bf16 generate equals fp32 in {same} of "
          f"{DECODE_BATCH} sequences", flush=True)


def generate(model, prompt, device):
    """Greedy generate, DECODE_STEPS new tokens: (tokens [batch, steps], raw logits [batch, steps, vocab])."""
    out = model.generate(prompt.to(device), attention_mask=torch.ones_like(prompt).to(device), do_sample=False,
                         num_beams=1, max_new_tokens=DECODE_STEPS,
                         output_logits=True, return_dict_in_generate=True)
    tokens = out.sequences[:, PROMPT_LEN:].cpu()
    logits = torch.stack(out.logits, dim=1).float().cpu()
    # no logits processor may have changed a choice: each token is the argmax of its raw logits
    if tokens.shape != (prompt.shape[0], DECODE_STEPS) or not torch.equal(tokens, logits.argmax(-1)):
        raise SystemExit("make_peer_reference.py: generate() did not pick the argmax of its raw logits "
                         "for every one of the %d steps (a generation_config default changed?)" % DECODE_STEPS)
    return tokens, logits


def save_f32(path, t):
    t.contiguous().numpy().astype("<f4").tofile(path)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
