"""Encoder throughput: M3Encoder vs the reference FlagEmbedding BGEM3FlagModel, in the same run.

Random weights at the full BGE-M3 architecture (hidden 1024, 16 heads, FFN 4096, vocab 250002); speed
does not depend on weight values. On CPU, ``--layers`` may be lowered (stated in the output).
Throughput is *real* tokens per second (tokens of the texts, no padding).

    python bench/bench_encoder.py --device cpu --layers 4 --texts 64
    python bench/bench_encoder.py --device cuda --layers 24 --texts 2048

Prints a table and, with ``--json FILE``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
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


def matmul_gflops(device: torch.device, dtype: torch.dtype, tokens: int = 2048, repeats: int = 5) -> float:
    """Best achieved GFLOP/s of the model's GEMM shapes ([tokens, 1024] x [1024, 4096] and back)."""
    a = torch.randn(tokens, 1024, device=device, dtype=dtype)
    w1 = torch.randn(4096, 1024, device=device, dtype=dtype)
    w2 = torch.randn(1024, 4096, device=device, dtype=dtype)
    flops = 2 * tokens * 1024 * 4096 * 2
    best = 0.0
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.nn.functional.linear(torch.nn.functional.linear(a, w1), w2)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=None, help="default: 24 on GPU, 4 on CPU")
    parser.add_argument("--texts", type=int, default=None, help="default: 2048 on GPU, 64 on CPU")
    parser.add_argument("--min-tokens", type=int, default=29)
    parser.add_argument("--max-tokens", type=int, default=394)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model-dir", default="bench/.models")
    parser.add_argument("--skip-reference-all", action="store_true", help="skip FlagEmbedding with all 3 outputs")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    layers = args.layers or (24 if gpu else 4)
    n_texts = args.texts or (2048 if gpu else 64)
    model_dir = Path(args.model_dir) / f"bge-m3-random-{layers}l"
    if not (model_dir / "colbert_linear.pt").exists():
        print(f"building random full-width model with {layers} layers in {model_dir} ...", flush=True)
        build_random_model(model_dir, num_layers=layers, vocab_size=250002, init_std=0.02)

    ours = M3Encoder(model_dir, device=device)
    texts = make_corpus(ours, n_texts, args.min_tokens, args.max_tokens)
    real_tokens = sum(ours.count_tokens(texts))
    seq_mean = real_tokens / n_texts
    flops_per_token = ours._net.flops_per_token(int(seq_mean))

    from FlagEmbedding import BGEM3FlagModel

    reference = BGEM3FlagModel(str(model_dir), use_fp16=gpu, devices=str(device))
    warm = texts[:2]
    reference.encode(warm)
    ours.encode(warm)

    dtype = ours.dtype
    results: dict[str, list[float]] = {"reference_default": [], "reference_all3": [], "ours_all3": []}
    fractions: list[float] = []
    gflops_seen: list[float] = []
    for _ in range(args.repeats):
        # The matmul-bound limit is measured right before our run, so both see the same machine load.
        gflops_seen.append(matmul_gflops(device, dtype))
        # Reference defaults: batch 256, max_length 512, dense only (its default), fp16 on GPU.
        results["reference_default"].append(real_tokens / timed(lambda: reference.encode(texts), device))
        if not args.skip_reference_all:
            results["reference_all3"].append(real_tokens / timed(lambda: reference.encode(
                texts, return_dense=True, return_sparse=True, return_colbert_vecs=True), device))
        results["ours_all3"].append(real_tokens / timed(lambda: ours.encode(texts), device))
        fractions.append(results["ours_all3"][-1] / (gflops_seen[-1] * 1e9 / flops_per_token))
    best = {k: max(v) for k, v in results.items() if v}
    median = {k: statistics.median(v) for k, v in results.items() if v}

    gflops = max(gflops_seen)
    limit = gflops * 1e9 / flops_per_token
    report = {
        "device": torch.cuda.get_device_name(device) if gpu else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(dtype), "varlen_attention": ours._net.varlen,
        "layers": layers, "texts": n_texts, "real_tokens": real_tokens,
        "mean_tokens_per_text": round(seq_mean, 1), "model_gflop_per_token": round(flops_per_token / 1e9, 3),
        "tokens_per_s_best": {k: round(v, 1) for k, v in best.items()},
        "tokens_per_s_median": {k: round(v, 1) for k, v in median.items()},
        "speedup_vs_reference_default": round(best["ours_all3"] / best["reference_default"], 2),
        "matmul_gflops": round(gflops, 1), "matmul_bound_tokens_per_s": round(limit, 1),
        "fraction_of_matmul_bound_per_run": [round(f, 3) for f in fractions],
        "fraction_of_matmul_bound": round(max(fractions), 3),
    }
    if "reference_all3" in best:
        report["speedup_vs_reference_all3"] = round(best["ours_all3"] / best["reference_all3"], 2)
    if gpu:
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
        if peak:
            achieved = best["ours_all3"] * flops_per_token / 1e12
            report["model_tflops"] = round(achieved, 1)
            report["fraction_of_bf16_peak"] = round(achieved / peak, 3)

    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
