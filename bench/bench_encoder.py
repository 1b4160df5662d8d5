"""Encoder throughput: M3Encoder vs the reference FlagEmbedding BGEM3FlagModel, in the same run.

Random weights at the full BGE-M3 architecture (hidden 1024, 16 heads, FFN 4096, vocab 250002); speed
does not depend on weight values. On CPU, ``--layers`` may be lowered (stated in the output).
Throughput is *real* tokens per second (tokens of the texts after truncation, no padding).

    python bench/bench_encoder.py --device cpu                  # 40 texts of 8-260 words, 4 layers, max_length 512
    python bench/bench_encoder.py --device cpu --profile        # + where our time goes (torch.profiler)
    python bench/bench_encoder.py --device cuda --layers 24 --corpus tokens --texts 2048

Contenders run interleaved (A B C D, A B C D, ...) so that a change of machine load cannot favour one side;
the report gives medians (and every run). Each round also re-measures the GEMM probe, the fp32 (bf16 on GPU)
throughput of the model's own GEMM shapes at our batch size, giving the matmul-bound limit: the time the model's
FLOPs would take if everything ran at GEMM speed.

Prints the machine (CPU model, threads), a table and, with ``--json FILE``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3_integrations import M3Encoder  # noqa: E402
from m3_integrations.testing import build_random_model  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "T4": 65.0}

WORDS = ("hybrid retrieval dense sparse vectors lexical matching semantic similarity database query document "
         "renard rapide chien rivière schnelle Fuchs Hund Ufer быстрая лиса собака 混合检索 語彙 검색"
         " 2024 3.14").split()

# English prose words for the word-count corpus (the shape of a user's check: N texts of 8-260 words).
PROSE = ("the of and to in is that for it as with was on be by this are from at or an which have not but one "
         "all were when there can more if has been their other will would about into than only its time these "
         "some two may any such first new also after most between through over where should under each both "
         "system data model query result value number search index vector document storage memory process "
         "function return error request response server client database collection field record language "
         "retrieval embedding similarity ranking score token sentence paragraph section chapter library version "
         "performance throughput latency batch thread network cluster machine learning training evaluation").split()

# torch.profiler op names grouped into where the time goes.
CATEGORIES = (
    ("GEMMs (linear layers, heads)", ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::matmul")),
    ("attention (SDPA)", ("attention",)),
    ("gathers / scatters / copies", ("aten::index", "aten::index_put_", "aten::_index_put_impl_", "aten::copy_",
                                     "aten::fill_", "aten::zero_", "aten::cat", "aten::contiguous")),
    ("GELU, residual adds, layer norms", ("aten::gelu", "aten::gelu_", "aten::add", "aten::add_",
                                          "aten::native_layer_norm")),
    ("sparse / ColBERT post-processing", ("aten::unique", "aten::_unique2", "aten::scatter_reduce", "aten::relu",
                                          "aten::linalg_vector_norm", "aten::div", "aten::clamp_min",
                                          "aten::bincount", "aten::nonzero", "aten::remainder")),
)


def cpu_model() -> str:
    """The CPU's model name (and family / model / stepping, which tell generations apart), from /proc/cpuinfo."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in {"model name", "cpu family", "model", "stepping"} and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        return platform.processor() or platform.machine()
    flags = ""
    try:
        cpu_flags = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")).split()
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in cpu_flags)
    except (OSError, StopIteration):
        pass
    name, family, model = fields.get("model name", "?"), fields.get("cpu family", "?"), fields.get("model", "?")
    return f"{name} (family {family}, model {model}, stepping {fields.get('stepping', '?')}; {flags})"


def make_corpus(encoder: M3Encoder, n: int, min_tokens: int, max_tokens: int, seed: int = 0) -> list[str]:
    """Texts whose token counts spread uniformly over [min_tokens, max_tokens]."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        target = rng.randint(min_tokens, max_tokens)
        words = [rng.choice(WORDS) for _ in range(target)]
        lo, hi = 1, len(words)
        while lo < hi:  # shortest prefix with at least `target` tokens
            mid = (lo + hi) // 2
            if encoder.count_tokens([" ".join(words[:mid])])[0] >= target:
                hi = mid
            else:
                lo = mid + 1
        texts.append(" ".join(words[:lo]))
    return texts


def make_word_corpus(n: int, min_words: int, max_words: int, seed: int = 0) -> list[str]:
    """``n`` texts of ``min_words``-``max_words`` English words (uniform); token counts follow the tokenizer."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(PROSE) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]


def gemm_probe(device: torch.device, dtype: torch.dtype, hidden: int, inter: int, rows: int,
               repeats: int = 3) -> float:
    """Best GFLOP/s of one layer's GEMMs (QKV, attention out, FFN in, FFN out) at ``rows`` tokens."""
    a = torch.randn(rows, hidden, device=device, dtype=dtype)
    h = torch.randn(rows, inter, device=device, dtype=dtype)
    weights = [(a, torch.randn(3 * hidden, hidden, device=device, dtype=dtype)),
               (a, torch.randn(hidden, hidden, device=device, dtype=dtype)),
               (a, torch.randn(inter, hidden, device=device, dtype=dtype)),
               (h, torch.randn(hidden, inter, device=device, dtype=dtype))]
    flops = sum(2 * rows * w.shape[0] * w.shape[1] for _, w in weights)
    best = 0.0
    for _ in range(repeats + 1):
        seconds = timed(lambda: [torch.nn.functional.linear(x, w) for x, w in weights], device)
        best = max(best, flops / seconds / 1e9)
    return best


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def model_flops(encoder: M3Encoder, lengths: list[int]) -> float:
    """FLOPs of one encode of sequences of these lengths: 2 x matmul parameters per token in every layer, attention
    (QK^T and AV, 4 x L^2 x hidden per sequence and layer), and the ColBERT / sparse heads."""
    net = encoder._net
    hidden, inter = net.hidden, net.layers[0].ffn_in_w.shape[0]
    tokens = sum(lengths)
    linear = 2 * (4 * hidden * hidden + 2 * hidden * inter) * tokens
    attention = 4 * hidden * sum(n * n for n in lengths)
    heads = 2 * (hidden * hidden + hidden) * tokens
    return float((linear + attention) * net.num_layers + heads)


def profile_ours(encode: Callable[[], object], encoder: M3Encoder, texts: list[str]) -> dict:
    """Where one encode's time goes: torch.profiler self CPU time by category, plus tokenization timed alone."""
    from torch.profiler import ProfilerActivity, profile

    device = encoder.device
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        wall = timed(encode, device)
    self_time: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        seconds = (event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total) / 1e6
        self_time[event.key] += seconds
    total = sum(self_time.values())
    by_category: dict[str, float] = {}
    claimed: set[str] = set()
    for category, names in CATEGORIES:
        keys = [k for k in self_time if k not in claimed and any(n == k or (n == "attention" and n in k)
                                                                 for n in names)]
        claimed.update(keys)
        by_category[category] = sum(self_time[k] for k in keys)
    by_category["other ops"] = total - sum(by_category.values())
    start = time.perf_counter()
    encoder.tokenize(texts)
    tokenize = time.perf_counter() - start
    top = sorted(self_time.items(), key=lambda kv: -kv[1])[:12]
    return {
        "wall_s_under_profiler": round(wall, 3), "op_time_s": round(total, 6), "tokenization_s": round(tokenize, 4),
        "by_category_s": {k: round(v, 6) for k, v in by_category.items()},
        "by_category_fraction": {k: round(v / total, 3) for k, v in by_category.items()},
        "top_ops_s": {k: round(v, 6) for k, v in top},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=None, help="default: 24 on GPU, 4 on CPU")
    parser.add_argument("--corpus", choices=["words", "tokens"], default="words",
                        help="words: --texts texts of --min-words..--max-words words (default); "
                             "tokens: token counts spread over --min-tokens..--max-tokens")
    parser.add_argument("--texts", type=int, default=None, help="default: 40 on CPU, 2048 on GPU")
    parser.add_argument("--min-words", type=int, default=8)
    parser.add_argument("--max-words", type=int, default=260)
    parser.add_argument("--min-tokens", type=int, default=29)
    parser.add_argument("--max-tokens", type=int, default=394)
    parser.add_argument("--max-length", type=int, default=512, help="truncation, both sides (FlagEmbedding's default)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of interleaved runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--contenders", default="reference_default,reference_b16_all3,ours_all3",
                        help="comma-separated, from: reference_default, reference_b16_all3, reference_all3, ours_all3")
    parser.add_argument("--batch-tokens", type=int, nargs="*", default=[],
                        help="also time ours at these max_batch_tokens (contenders ours_all3@N, same rounds)")
    parser.add_argument("--profile", action="store_true", help="also profile one of our encodes (torch.profiler)")
    parser.add_argument("--model-dir", default="bench/.models")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    layers = args.layers or (24 if gpu else 4)
    n_texts = args.texts or (2048 if gpu else 40)
    model_dir = Path(args.model_dir) / f"bge-m3-random-{layers}l"
    if not (model_dir / "colbert_linear.pt").exists():
        print(f"building random full-width model with {layers} layers in {model_dir} ...", flush=True)
        build_random_model(model_dir, num_layers=layers, vocab_size=250002, init_std=0.02)

    machine = torch.cuda.get_device_name(device) if gpu else cpu_model()
    print(f"machine: {machine}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    ours = M3Encoder(model_dir, device=device)
    if args.corpus == "words":
        texts = make_word_corpus(n_texts, args.min_words, args.max_words)
    else:
        texts = make_corpus(ours, n_texts, args.min_tokens, args.max_tokens)
    lengths = [min(n, args.max_length) for n in ours.count_tokens(texts)]
    real_tokens = sum(lengths)
    flops = model_flops(ours, lengths)

    from FlagEmbedding import BGEM3FlagModel

    reference = BGEM3FlagModel(str(model_dir), use_fp16=gpu, devices=str(device))
    contenders: dict[str, Callable[[], object]] = {
        # its defaults: batch 256, max_length 512, dense only; fp16 on GPU (on CPU it falls back to fp32)
        "reference_default": lambda: reference.encode(texts, max_length=args.max_length),
        "reference_b16_all3": lambda: reference.encode(
            texts, batch_size=16, max_length=args.max_length, return_dense=True, return_sparse=True,
            return_colbert_vecs=True),
        "reference_all3": lambda: reference.encode(
            texts, max_length=args.max_length, return_dense=True, return_sparse=True, return_colbert_vecs=True),
        "ours_all3": lambda: ours.encode(texts, max_length=args.max_length),
    }
    default_budget = ours.max_batch_tokens

    def ours_at(budget: int) -> Callable[[], object]:
        def run() -> object:
            ours.max_batch_tokens = budget
            try:
                return ours.encode(texts, max_length=args.max_length)
            finally:
                ours.max_batch_tokens = default_budget
        return run

    for budget in args.batch_tokens:
        contenders[f"ours_all3@{budget}"] = ours_at(budget)
    chosen = [c.strip() for c in args.contenders.split(",") if c.strip()]
    chosen += [f"ours_all3@{b}" for b in args.batch_tokens]
    unknown = [c for c in chosen if c not in contenders]
    if unknown or "ours_all3" not in chosen:
        parser.error(f"--contenders: unknown {unknown} (ours_all3 must be one of them)")
    reference.encode(texts[:2])
    ours.encode(texts[:2])

    hidden, inter = ours._net.hidden, ours._net.layers[0].ffn_in_w.shape[0]
    probe_rows = min(ours.max_batch_tokens, max(real_tokens, 1))
    seconds: dict[str, list[float]] = {c: [] for c in chosen}
    gemm_gflops: list[float] = []
    for round_ in range(args.repeats):
        gemm_gflops.append(gemm_probe(device, ours.dtype, hidden, inter, probe_rows))
        for name in chosen:
            seconds[name].append(timed(contenders[name], device))
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {s[-1]:.2f} s" for n, s in seconds.items())
              + f"; GEMM probe {gemm_gflops[-1]:.0f} GFLOP/s", flush=True)

    median_s = {n: statistics.median(s) for n, s in seconds.items()}
    gflops = statistics.median(gemm_gflops)
    bound_s = flops / (gflops * 1e9)
    ours_s = median_s["ours_all3"]
    report = {
        "machine": machine, "threads": torch.get_num_threads(), "device": str(device), "dtype": str(ours.dtype),
        "torch": torch.__version__, "varlen_attention": ours._net.varlen, "layers": layers,
        "corpus": args.corpus, "texts": n_texts, "max_length": args.max_length, "real_tokens": real_tokens,
        "tokens_per_text": {"min": min(lengths), "mean": round(real_tokens / n_texts, 1), "max": max(lengths)},
        "max_batch_tokens": ours.max_batch_tokens, "model_gflop": round(flops / 1e9, 1),
        "seconds_per_run": {n: [round(x, 3) for x in s] for n, s in seconds.items()},
        "seconds_median": {n: round(x, 3) for n, x in median_s.items()},
        "real_tokens_per_s_median": {n: round(real_tokens / x, 1) for n, x in median_s.items()},
        "speedup_median": {n: round(x / ours_s, 2) for n, x in median_s.items() if n != "ours_all3"},
        "speedup_per_round": {n: [round(a / b, 2) for a, b in zip(s, seconds["ours_all3"], strict=True)]
                              for n, s in seconds.items() if n != "ours_all3"},
        "gemm_probe_gflops_per_round": [round(g, 1) for g in gemm_gflops],
        "matmul_bound_s": round(bound_s, 3),
        "fraction_of_matmul_bound_median": round(bound_s / ours_s, 3),
        "fraction_of_matmul_bound_per_round": [
            round(flops / (g * 1e9) / s, 3) for g, s in zip(gemm_gflops, seconds["ours_all3"], strict=True)],
    }
    if gpu:
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
        if peak:
            achieved = flops / ours_s / 1e12
            report["model_tflops"] = round(achieved, 1)
            report["fraction_of_bf16_peak"] = round(achieved / peak, 3)
    if args.profile:
        report["profile_ours"] = profile_ours(contenders["ours_all3"], ours, texts)

    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
