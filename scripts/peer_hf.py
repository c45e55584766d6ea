#!/usr/bin/env python3
"""The peer stack beside bench: the same model config, shapes and GPUs run in
PyTorch + transformers, timed the way bench times its strategies, appended as
rows of summary.csv (the same columns, harness/report/summary.c) so tables, plots and
report.html show the peer next to ours.

Strategies (--strategies, default hf-naive,hf-auto):
  hf-naive   the seed script's manual split: per = L // N, layer i on GPU
             min(i // per, N-1), embeddings on GPU 0, norm and lm_head on the last
             GPU; a hand-written forward that moves the activations between GPUs
             and passes each decoder layer the rotary position embeddings computed
             once by model.model.rotary_emb and moved to the layer's GPU.
  hf-auto    from_pretrained(device_map="auto") (accelerate's hooks move inputs).
  hf-single  the whole model on GPU 0: the peer's baseline.
  hf-compiled  the whole model on GPU 0 as a user who wants speed without a
             serving engine runs it: a static KV cache and torch.compile
             (mode "reduce-overhead": CUDA graphs) of the one-token step; in
             prefill mode of the prompt's forward (in generate mode the prompt
             runs eagerly into the cache). In generate mode each pass is timed at
             --decode tokens and at a quarter of them; the difference over the
             tokens between gives the time of one decode step, without the
             prefill or the compilation (printed, and in peer_hf.json as
             decode_step_ms and decode_tokens_per_s).

Random weights: a model built from the config (seeded) is saved once with
save_pretrained into --checkpoint (default: a folder under the temp dir, reused on
the next run), so every strategy loads the same weights the way a user would.
No network is needed.

Timing, as bench: --warmup passes, then --iters timed passes; each pass is timed
on the host between synchronisations of every GPU in use; p50/p90/p99/mean with
linear interpolation. Per-GPU busy time: further passes under torch.profiler
(CUDA activity; one pass per profiler session so passes do not mix), kernel and
memcpy intervals unioned per GPU over one window shared by all GPUs
(docs/METRICS.md), averaged over min(iters, 5) passes.
Generate mode (--decode T): one pass = prefill, then T greedy tokens with a KV
cache; tokens/s counts the generated tokens (batch x T / latency).

usage:
  scripts/peer_hf.py --model models/llama-2-7b.json --gpus 2 --batch 8 --seq 512 --out results/RUN
  scripts/peer_hf.py --model models/llama-2-7b.json --gpus 2 --batch 1 --seq 128 --decode 64 --out results/RUN

Needs torch and transformers (tested against transformers 5.17, accelerate 1.15,
torch 2.11). Exit status: 0 every strategy ran, 1 one failed (recorded as a
failed row with its reason), 2 bad usage.
"""
import argparse
import csv
import gc
import io
import json
import math
import os
import sys
import tempfile
import time

# The columns of summary.csv, in order (harness/report/summary.c: summary_csv_columns;
# tests/test_peer_script.c checks that the two lists agree).
COLUMNS = [
    "strategy", "mode", "batch", "seq", "decode_tokens", "microbatches", "devices", "status",
    "reason", "placement", "stages", "steps", "iters", "latency_p50_ms", "latency_p90_ms",
    "latency_p99_ms", "latency_mean_ms", "tokens_per_s", "speedup_vs_single", "window_ms",
    "utilisation_per_gpu", "compute_ms_per_gpu", "comm_ms_per_gpu", "copy_ms_per_gpu",
    "idle_ms_per_gpu", "own_span_ms_per_gpu", "transfer_bytes", "transfer_ms", "transfer_gbps",
    "allreduce_ms", "bubble_per_stage", "gpipe_bound", "busy_known", "dropped_records",
    "logits_checked", "logits_match", "logits_max_abs_diff", "cuda_graph", "predicted", "predicted_ms",
    "prediction_error_pct", "profile_iters", "profiled_p50_ms", "cupti_overhead_pct", "weights",
    "weights_bytes_per_gpu", "kv_bytes_per_gpu", "activation_bytes_per_gpu", "peak_bytes_per_gpu",
    "free_bytes_per_gpu", "measured_peak_bytes_per_gpu", "max_context_at_batch", "max_batch_at_context",
    "idle_peer_wait_ms_per_gpu", "idle_host_ms_per_gpu", "idle_other_ms_per_gpu", "mbu_per_gpu", "mfu_per_gpu",
    "collective_bytes", "collective_busbw_gbps",
]
STRATEGIES = ("hf-single", "hf-naive", "hf-auto", "hf-compiled")
PROFILED_PASSES = 5
LOGITS_TOLERANCE = 0.0   # the same weights, kernels and rows: expect identical logits


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a Hugging Face config.json, e.g. models/llama-2-7b.json")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--gpus", type=int, default=0, help="first N visible GPUs (default: all)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--decode", type=int, default=0, metavar="T", help="generate T greedy tokens after the prefill")
    ap.add_argument("--strategies", default="hf-naive,hf-auto", help="comma list of " + ",".join(STRATEGIES))
    ap.add_argument("--out", required=True, help="results folder: rows are appended to its summary.csv")
    ap.add_argument("--checkpoint", default=None, help="folder for the random checkpoint (reused if present)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-profile", action="store_true", help="skip torch.profiler (busy time unknown)")
    a = ap.parse_args()
    bad = [s for s in a.strategies.split(",") if s not in STRATEGIES]
    if bad:
        ap.error("unknown strategy %s; valid: %s" % (",".join(bad), ",".join(STRATEGIES)))
    for name in ("batch", "seq", "iters"):
        if getattr(a, name) < 1:
            ap.error("--%s must be at least 1" % name)
    if a.warmup < 0 or a.decode < 0 or a.gpus < 0:
        ap.error("--warmup, --decode and --gpus cannot be negative")
    if not os.path.isfile(a.model):
        ap.error("no such model config: %s" % a.model)
    return a


def restrict_gpus(n):
    """--gpus N: the first N visible GPUs, set before torch initialises CUDA."""
    if n <= 0:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(n)]
    if len(ids) < n:
        sys.exit("peer_hf.py: asked for %d GPU(s) but CUDA_VISIBLE_DEVICES lists %d" % (n, len(ids)))
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids[:n])


# ---------------------------------------------------------------- statistics

def percentile(values, p):
    """Linear interpolation between closest ranks, as metrics_percentile in C."""
    v = sorted(values)
    if not v:
        return float("nan")
    pos = (len(v) - 1) * p / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def union_ms(intervals):
    """Total length of the union of (start_us, end_us) intervals, in ms."""
    total, end = 0.0, None
    for s, e in sorted(intervals):
        if end is None or s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total / 1e3


def busy_metrics(trace_events, n_gpus):
    """Per-GPU metrics of one pass from Chrome trace events (the profiler's
    categories kernel / gpu_memcpy / gpu_memset, args.device)."""
    per = {d: {"compute": [], "comm": [], "copy": [], "all": [], "kernels": []} for d in range(n_gpus)}
    ptop = []
    ptop_bytes = 0
    for e in trace_events:
        cat = e.get("cat", "")
        if e.get("ph") != "X" or cat not in ("kernel", "gpu_memcpy", "gpu_memset"):
            continue
        dev = (e.get("args") or {}).get("device")
        if dev not in per:
            continue
        iv = (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)))
        name = e.get("name", "")
        per[dev]["all"].append(iv)
        if cat == "kernel":
            per[dev]["comm" if "nccl" in name.lower() else "compute"].append(iv)
            per[dev]["kernels"].append(iv)
        elif cat == "gpu_memcpy":
            per[dev]["copy"].append(iv)
            if "PtoP" in name:
                ptop.append(iv)
                ptop_bytes += int((e.get("args") or {}).get("bytes", 0))
    spans = [iv for d in per for iv in per[d]["all"]]
    if not spans:
        return None
    w0, w1 = min(s for s, _ in spans), max(e for _, e in spans)
    window = (w1 - w0) / 1e3
    out = {"window": window, "gpu": [], "transfer_bytes": ptop_bytes, "transfer_ms": union_ms(ptop)}
    for d in range(n_gpus):
        p = per[d]
        # As harness/measure/metrics.c: idle = window - union of all activity; utilisation =
        # union of kernel intervals (compute and NCCL) / window; own span over kernels.
        busy = union_ms(p["all"])
        k = p["kernels"]
        own = (max(e for _, e in k) - min(s for s, _ in k)) / 1e3 if k else 0.0
        out["gpu"].append({"compute": union_ms(p["compute"]), "comm": union_ms(p["comm"]),
                           "copy": union_ms(p["copy"]), "idle": window - busy,
                           "util": union_ms(k) / window if window > 0 else float("nan"), "own": own})
    return out


def mean_metrics(samples, n_gpus):
    samples = [s for s in samples if s]
    if not samples:
        return None
    k = len(samples)
    m = {"window": sum(s["window"] for s in samples) / k,
         "transfer_bytes": sum(s["transfer_bytes"] for s in samples) / k,
         "transfer_ms": sum(s["transfer_ms"] for s in samples) / k, "gpu": []}
    for d in range(n_gpus):
        m["gpu"].append({key: sum(s["gpu"][d][key] for s in samples) / k
                         for key in ("compute", "comm", "copy", "idle", "util", "own")})
    return m


# ---------------------------------------------------------------- the model

def load_config(path):
    from transformers import AutoConfig
    with open(path) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or ["?"])[0]
    if arch not in ("LlamaForCausalLM", "MistralForCausalLM"):
        sys.exit("peer_hf.py: %s: architecture %s is not a Llama-family model" % (path, arch))
    model_type = cfg.pop("model_type", "mistral" if arch.startswith("Mistral") else "llama")
    config = AutoConfig.for_model(model_type, **cfg)
    # SDPA with no attention mask is causal for a prefill and exact for one new token,
    # the same kernels for every strategy.
    config._attn_implementation = "sdpa"
    return config


def make_checkpoint(config, path, seed):
    """Random weights, seeded, saved once; later runs reuse the folder."""
    import torch
    from transformers import AutoModelForCausalLM
    if os.path.isfile(os.path.join(path, "config.json")):
        return
    print("peer_hf.py: building random weights into %s (once)" % path, file=sys.stderr)
    torch.manual_seed(seed)
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    del model
    gc.collect()
    torch.cuda.empty_cache()


def load(strategy, path, n_gpus):
    """(model, forward, devices used, placement text, device map)."""
    import torch
    from transformers import AutoModelForCausalLM
    if strategy == "hf-auto":
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="auto").eval()
        # transformers sets hf_device_map only when it dispatched over several
        # devices; a model that fits one GPU is simply moved there.
        dmap = getattr(model, "hf_device_map", None)
        if not dmap:
            dev = next(model.parameters()).device
            dmap = {"": dev.index if dev.type == "cuda" else str(dev)}
        dmap = dict(dmap)
        return model, hf_forward(model), used_devices(dmap), describe(dmap), dmap
    if strategy in ("hf-single", "hf-compiled"):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map={"": 0}).eval()
        dmap = {"": 0}
        return model, hf_forward(model), [0], "0: everything", dmap
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()   # on the cpu
    forward, dmap = naive_split(model, n_gpus)
    return model, forward, used_devices(dmap), describe(dmap), dmap


def used_devices(dmap):
    return sorted({v for v in dmap.values() if isinstance(v, int)})


def describe(dmap):
    """'0: embed, layers 0-15 | 1: layers 16-31, norm, head' from an hf_device_map."""
    parts = {}
    for name, dev in dmap.items():
        parts.setdefault(str(dev), []).append(name)
    out = []
    for dev, names in parts.items():
        layers = sorted(int(n.split(".")[2]) for n in names if n.startswith("model.layers."))
        items = ["embed"] if "model.embed_tokens" in names else []
        if layers:
            items.append("layers %d-%d" % (layers[0], layers[-1]) if len(layers) > 1 else "layer %d" % layers[0])
        items += [short for full, short in (("model.norm", "norm"), ("model.rotary_emb", "rotary"),
                                            ("lm_head", "head")) if full in names]
        # a key of "" (or "model") stands for every module under it
        items += ["everything" if n == "" else "all of model" for n in names if n in ("", "model")]
        out.append("%s: %s" % (dev, ", ".join(items)))
    return " | ".join(out)


def hf_forward(model):
    """One pass through transformers' own forward (accelerate's hooks move inputs)."""
    def forward(ids, cache, start):
        import torch
        pos = torch.arange(start, start + ids.shape[1], device=ids.device)
        out = model(input_ids=ids, past_key_values=cache, use_cache=cache is not None, cache_position=pos,
                    logits_to_keep=1)
        return out.logits[:, -1, :]
    return forward


def naive_split(model, n):
    """The seed script: per = L // N, layer i on min(i // per, N-1); a forward by hand."""
    import torch
    inner = model.model
    L = len(inner.layers)
    if L < n:
        raise RuntimeError("%d layers cannot be split over %d GPUs: the script divides by L // N = 0" % (L, n))
    per = L // n
    dev = ["cuda:%d" % min(i // per, n - 1) for i in range(L)]
    first, last = "cuda:0", "cuda:%d" % (n - 1)
    inner.embed_tokens.to(first)
    inner.rotary_emb.to(first)
    for i, layer in enumerate(inner.layers):
        layer.to(dev[i])
    inner.norm.to(last)
    model.lm_head.to(last)
    dmap = {"model.embed_tokens": 0, "model.rotary_emb": 0}
    dmap.update({"model.layers.%d" % i: int(dev[i].split(":")[1]) for i in range(L)})
    dmap.update({"model.norm": n - 1, "lm_head": n - 1})

    def forward(ids, cache, start):
        h = inner.embed_tokens(ids.to(first))
        pos = torch.arange(start, start + ids.shape[1], device=first)
        position_ids = pos.unsqueeze(0).expand(ids.shape[0], -1)
        cos, sin = inner.rotary_emb(h, position_ids)
        pe = {first: (cos, sin)}
        for i, layer in enumerate(inner.layers):
            if h.device != torch.device(dev[i]):
                h = h.to(dev[i])
            if dev[i] not in pe:
                pe[dev[i]] = (cos.to(dev[i]), sin.to(dev[i]))
            out = layer(h, attention_mask=None, position_ids=position_ids.to(dev[i]), past_key_values=cache,
                        use_cache=cache is not None, cache_position=pos.to(dev[i]), position_embeddings=pe[dev[i]])
            h = out[0] if isinstance(out, tuple) else out
        h = inner.norm(h.to(last))
        return model.lm_head(h[:, -1:, :])[:, -1, :]
    return forward, dmap


# ---------------------------------------------------------------- running

def one_pass(forward, ids, decode):
    """Prefill, then `decode` greedy tokens with a KV cache. Returns the prefill's last logits."""
    from transformers import DynamicCache
    cache = DynamicCache() if decode else None
    logits = forward(ids, cache, 0)
    first_logits = logits
    pos = ids.shape[1]
    for _ in range(decode):
        nxt = logits.argmax(dim=-1, keepdim=True).to(ids.device)
        logits = forward(nxt, cache, pos)
        pos += 1
    return first_logits


def sync(devices):
    import torch
    for d in devices:
        torch.cuda.synchronize(d)


def profiled_pass(forward, ids, decode, devices, n_gpus):
    import torch
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        one_pass(forward, ids, decode)
        sync(devices)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f).get("traceEvents", [])
    finally:
        os.unlink(path)
    return busy_metrics(events, n_gpus)


def failed(row, e):
    """A failed point is recorded with its reason; the others go on."""
    row.update(status="failed", reason="%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
    return row, None, None


def release_gpu_memory():
    import torch
    gc.collect()
    torch.cuda.empty_cache()


def static_cache(model, batch, max_len):
    """A StaticCache on GPU 0 for batch x max_len tokens (transformers 5 sizes it
    lazily from the first update; 4.x takes the sizes and device up front)."""
    import torch
    from transformers import StaticCache
    try:
        return StaticCache(config=model.config, max_cache_len=max_len)
    except TypeError:
        return StaticCache(config=model.config, max_batch_size=batch, max_cache_len=max_len,
                           device="cuda:0", dtype=torch.bfloat16)


class CompiledRunner:
    """hf-compiled: the prompt's forward and the one-token step under torch.compile,
    with a static KV cache sized for the prompt and --decode tokens."""

    def __init__(self, model, batch, seq, decode):
        import torch
        self.model, self.seq = model, seq
        self.cache = static_cache(model, batch, seq + decode + 1) if decode else None

        def prefill(ids, cache, pos):
            out = model(input_ids=ids, past_key_values=cache, use_cache=cache is not None, cache_position=pos,
                        logits_to_keep=1)
            return out.logits[:, -1, :]

        def step(ids, cache, pos):
            return model(input_ids=ids, past_key_values=cache, use_cache=True, cache_position=pos).logits[:, -1, :]
        # one compilation only: for the prompt in prefill mode, for the step in
        # generate mode (the prefill drops out of the per-step figure anyway)
        self.prefill = prefill if decode else torch.compile(prefill, mode="reduce-overhead", fullgraph=True)
        self.step = torch.compile(step, mode="reduce-overhead", fullgraph=True)

    def one_pass(self, ids, decode):
        """Prefill, then `decode` greedy tokens. Returns the prefill's last logits."""
        import torch
        if self.cache is not None:
            self.cache.reset()
        pos = torch.arange(self.seq, device=ids.device)
        logits = self.prefill(ids, self.cache, pos).clone()
        first = logits
        for i in range(decode):
            nxt = logits.argmax(dim=-1, keepdim=True)
            logits = self.step(nxt, self.cache, torch.tensor([self.seq + i], device=ids.device))
        return first


def run_compiled(a, ckpt, tokens):
    """The hf-compiled row: passes timed as run_strategy times them; in generate
    mode also passes of a quarter of the tokens, for the per-step figure."""
    import torch
    row = {c: "" for c in COLUMNS}
    row.update(strategy="hf-compiled", mode="generate" if a.decode else "prefill", batch=a.batch, seq=a.seq,
               decode_tokens=a.decode, microbatches=1, iters=a.iters, busy_known=0, dropped_records=0,
               logits_checked=0, logits_match=0, cuda_graph=1, predicted=0, devices="0", stages=1,
               placement="0: everything (static KV cache, torch.compile reduce-overhead)")
    model = None
    try:
        model, _, _, _, dmap = load("hf-compiled", ckpt, 1)
        runner = CompiledRunner(model, a.batch, a.seq, a.decode)
        ids = tokens.to("cuda:0")
        short = max(1, a.decode // 4)

        def timed(decode):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            logits = runner.one_pass(ids, decode)
            torch.cuda.synchronize()
            return (time.perf_counter() - t0) * 1e3, logits
        with torch.inference_mode():
            for _ in range(max(a.warmup, 2)):   # the first passes compile and record the graphs
                runner.one_pass(ids, a.decode)
            torch.cuda.synchronize()
            lat, lat_short = [], []
            for _ in range(a.iters):
                ms, logits = timed(a.decode)
                lat.append(ms)
                if a.decode:
                    lat_short.append(timed(short)[0])
        p50 = percentile(lat, 50)
        tokens_done = a.batch * (a.decode if a.decode else a.seq)
        row.update(status="ok", latency_p50_ms=p50, latency_p90_ms=percentile(lat, 90),
                   latency_p99_ms=percentile(lat, 99), latency_mean_ms=sum(lat) / len(lat),
                   tokens_per_s=tokens_done / (p50 / 1e3))
        if a.decode and a.decode > short:
            step_ms = (p50 - percentile(lat_short, 50)) / (a.decode - short)
            row.update(decode_step_ms=step_ms, decode_tokens_per_s=a.batch * 1e3 / step_ms if step_ms > 0 else "")
        return row, logits.float().cpu(), dmap
    except Exception as e:
        return failed(row, e)
    finally:
        del model
        release_gpu_memory()


def run_strategy(strategy, a, ckpt, config, n_gpus, tokens):
    import torch
    row = {c: "" for c in COLUMNS}
    row.update(strategy=strategy, mode="generate" if a.decode else "prefill", batch=a.batch, seq=a.seq,
               decode_tokens=a.decode, microbatches=1, iters=a.iters, busy_known=0, dropped_records=0,
               logits_checked=0, logits_match=0, cuda_graph=0, predicted=0,
               weights="random")   # make_checkpoint's seeded random checkpoint
    model = None
    try:
        model, forward, devices, placement, dmap = load(strategy, ckpt, n_gpus)
        if any(not isinstance(v, int) for v in dmap.values()):
            placement += " (offloaded: %s)" % ",".join(sorted({str(v) for v in dmap.values() if not isinstance(v, int)}))
        row.update(devices=";".join(str(d) for d in devices), placement=placement, stages=len(devices))
        ids = tokens.to("cuda:%d" % devices[0])
        with torch.inference_mode():
            for _ in range(a.warmup):
                one_pass(forward, ids, a.decode)
            sync(devices)
            lat = []
            for _ in range(a.iters):
                sync(devices)
                t0 = time.perf_counter()
                logits = one_pass(forward, ids, a.decode)
                sync(devices)
                lat.append((time.perf_counter() - t0) * 1e3)
            m = None
            if not a.no_profile:
                m = mean_metrics([profiled_pass(forward, ids, a.decode, devices, n_gpus)
                                  for _ in range(min(a.iters, PROFILED_PASSES))], n_gpus)
        p50 = percentile(lat, 50)
        tokens_done = a.batch * (a.decode if a.decode else a.seq)
        row.update(status="ok", latency_p50_ms=p50, latency_p90_ms=percentile(lat, 90),
                   latency_p99_ms=percentile(lat, 99), latency_mean_ms=sum(lat) / len(lat),
                   tokens_per_s=tokens_done / (p50 / 1e3))
        if m:
            row.update(profile_iters=min(a.iters, PROFILED_PASSES))
            g = [m["gpu"][d] for d in devices]
            fmt = lambda key: ";".join("%.6g" % x[key] for x in g)
            row.update(busy_known=1, window_ms=m["window"], utilisation_per_gpu=fmt("util"),
                       compute_ms_per_gpu=fmt("compute"), comm_ms_per_gpu=fmt("comm"), copy_ms_per_gpu=fmt("copy"),
                       idle_ms_per_gpu=fmt("idle"), own_span_ms_per_gpu=fmt("own"),
                       transfer_bytes=round(m["transfer_bytes"]), transfer_ms=m["transfer_ms"],
                       transfer_gbps=m["transfer_bytes"] / m["transfer_ms"] / 1e6 if m["transfer_ms"] > 0 else "")
        return row, logits.float().cpu(), dmap
    except Exception as e:
        return failed(row, e)
    finally:
        del model
        release_gpu_memory()


def fmt_value(v):
    if isinstance(v, float):
        return "" if math.isnan(v) or math.isinf(v) else "%.6g" % v
    return str(v)


def append_rows(out_dir, rows):
    """Append to out/summary.csv by column name (RFC 4180, CRLF), through a
    temporary file and a rename so the table is never half written."""
    path = os.path.join(out_dir, "summary.csv")
    header, old = COLUMNS, []
    if os.path.exists(path):
        with open(path, newline="") as f:
            r = list(csv.reader(f))
        if r:
            header, old = r[0], r[1:]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                print("peer_hf.py: warning: %s lacks columns %s; those values are left out" % (path, ",".join(missing)),
                      file=sys.stderr)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(old)
    for row in rows:
        w.writerow([fmt_value(row.get(c, "")) for c in header])
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w", newline="") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)
    return path


def main():
    a = parse_args()
    restrict_gpus(a.gpus)
    import torch
    import transformers
    if not torch.cuda.is_available():
        sys.exit("peer_hf.py: no GPU visible to torch; the peer stack needs CUDA")
    n_gpus = torch.cuda.device_count()
    config = load_config(a.model)
    name = os.path.splitext(os.path.basename(a.model))[0]
    ckpt = a.checkpoint or os.path.join(tempfile.gettempdir(), "placebench-peer-%s-seed%d" % (name, a.seed))
    make_checkpoint(config, ckpt, a.seed)
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed + 1)
    tokens = torch.randint(0, config.vocab_size, (a.batch, a.seq), generator=g)
    rows, maps, ref = [], {}, None
    for s in a.strategies.split(","):
        print("peer_hf.py: %s on %d GPU(s), batch %d x seq %d%s" % (s, n_gpus, a.batch, a.seq,
              ", %d decode tokens" % a.decode if a.decode else ""), file=sys.stderr)
        if s == "hf-compiled":
            row, logits, dmap = run_compiled(a, ckpt, tokens)
        else:
            row, logits, dmap = run_strategy(s, a, ckpt, config, n_gpus, tokens)
        if logits is not None:
            # Outputs checked against the first strategy that ran (hf-single when asked for).
            if ref is None:
                ref = logits
            else:
                diff = (logits - ref).abs().max().item()
                row.update(logits_checked=1, logits_match=int(diff <= LOGITS_TOLERANCE), logits_max_abs_diff=diff)
        rows.append(row)
        maps[s] = dmap
    single = [r for r in rows if r["strategy"] == "hf-single" and r["status"] == "ok"]
    if single:
        for r in rows:
            if r["status"] == "ok":
                r["speedup_vs_single"] = single[0]["latency_p50_ms"] / r["latency_p50_ms"]
    path = append_rows(a.out, rows)
    info = {"model": a.model, "checkpoint": "random, seed %d" % a.seed, "torch": torch.__version__,
            "transformers": transformers.__version__, "gpus": [torch.cuda.get_device_name(d) for d in range(n_gpus)],
            "device_maps": maps, "rows": rows}
    try:
        import accelerate
        info["accelerate"] = accelerate.__version__
    except ImportError:
        pass
    with open(os.path.join(a.out, "peer_hf.json.tmp"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    os.replace(os.path.join(a.out, "peer_hf.json.tmp"), os.path.join(a.out, "peer_hf.json"))
    for r in rows:
        print("%-10s %-7s p50 %s ms  %s tokens/s  util %s  %s" % (
            r["strategy"], r["status"], fmt_value(r["latency_p50_ms"]), fmt_value(r["tokens_per_s"]),
            r["utilisation_per_gpu"] or "unknown", r["reason"] or r["placement"]))
        if r.get("decode_step_ms", "") != "":
            print("%-10s decode step %s ms = %s tokens/s (batch %d, context %d..%d, by differencing %d and %d tokens)"
                  % (r["strategy"], fmt_value(r["decode_step_ms"]), fmt_value(r["decode_tokens_per_s"]), a.batch,
                     a.seq + 1, a.seq + a.decode, max(1, a.decode // 4), a.decode))
    print("appended %d row(s) to %s" % (len(rows), path))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
