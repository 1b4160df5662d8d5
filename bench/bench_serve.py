"""Encoder service under load: 1 / 8 / 32 concurrent clients against in-process ``encode`` of the same texts.

A random model at BGE-M3's full width (hidden 1024, 16 heads, FFN 4096; ``--layers`` of them) is served
by ``m3_integrations.serve`` in its own process on 127.0.0.1; each client sends one ``POST /encode``
(all three outputs, dense base64 float32, ColBERT base64 float16: the service's default wire format)
after another for ``--seconds``. The reference is the same model in this process: ``encode`` of the same
texts, one call per ``--inproc-batch`` texts, run over and over for ``--seconds`` right before each
level (with the service idle), so a shared machine whose load changes compares like with like. Throughput is real tokens
per second (tokens of the texts), p50 / p99 are per-request latencies seen by the clients, errors are
non-200 answers or failed connections. Bounded: every level runs for a fixed time.

    python bench/bench_serve.py --layers 4 --seconds 10                 # CPU
    python bench/bench_serve.py --device cuda --layers 24 --seconds 20  # GPU (default where CUDA exists)

Prints a table and, with ``--json FILE``, writes the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_encoder import make_corpus  # noqa: E402  (the same token-spread texts as the encoder benchmark)

_SERVER = """
import sys, threading, time
from m3_integrations import M3Encoder
from m3_integrations.serve import M3Server, ServeSettings, create_app
model, device, max_batch_tokens, max_wait_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
encoder = M3Encoder(model, device=device, max_batch_tokens=max_batch_tokens)
app = create_app(encoder, ServeSettings(max_wait_ms=max_wait_ms))
server = M3Server(app, port=0, log_level="warning")
def announce():
    while not server._server.started:
        time.sleep(0.01)
    print(server.url, flush=True)
threading.Thread(target=announce, daemon=True).start()
server.run()
"""


def in_process(encoder, texts: list[str], tokens: list[int], seconds: float, batch: int) -> dict:
    """Tokens/s of ``encoder.encode`` over the texts, ``batch`` texts per call, for ``seconds``."""
    encoder.encode(texts[:batch])  # warm-up
    done_texts = done_tokens = calls = 0
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        chunk = [(i + j) % len(texts) for j in range(batch)]
        encoder.encode([texts[k] for k in chunk])
        done_texts += batch
        done_tokens += sum(tokens[k] for k in chunk)
        calls += 1
        i += batch
    elapsed = time.perf_counter() - start
    return {"texts_per_s": done_texts / elapsed, "tokens_per_s": done_tokens / elapsed, "calls": calls,
            "seconds": elapsed}


async def load(url: str, texts: list[str], tokens: list[int], clients: int, seconds: float, warmup: float) -> dict:
    """``clients`` concurrent clients, one request after another, for ``warmup`` + ``seconds``."""
    import httpx

    latencies: list[float] = []
    counted = {"texts": 0, "tokens": 0, "errors": 0, "requests": 0}
    errors: list[str] = []
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    body = {"encoding_format": "base64", "colbert_format": "base64", "colbert_dtype": "float16"}

    async def client(c: int, http: httpx.AsyncClient) -> None:
        k = c * 7919
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            i = k % len(texts)
            k += 1
            ok = False
            try:
                r = await http.post("/encode", json={"input": [texts[i]], **body})
                ok = r.status_code == 200
                if ok:
                    row = r.json()["data"][0]
                    # a complete answer: ColBERT rows as announced (a random model may give no sparse weights)
                    ok = len(base64.b64decode(row["colbert"]["data"])) == 2 * row["colbert"]["shape"][0] * 1024 \
                        and len(row["sparse"]["indices"]) == len(row["sparse"]["values"])
                elif len(errors) < 5:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except Exception as exc:  # a failed connection is an error of the run, not of the benchmark
                if len(errors) < 5:
                    errors.append(f"{type(exc).__name__}: {exc}")
            done = time.perf_counter()
            if measure_from <= done <= stop_at:  # answers completed inside the measured window
                counted["requests"] += 1
                if ok:
                    latencies.append(done - sent)
                    counted["texts"] += 1
                    counted["tokens"] += tokens[i]
                else:
                    counted["errors"] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        await asyncio.gather(*(client(c, http) for c in range(clients)))
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {"clients": clients, "texts_per_s": counted["texts"] / seconds, "tokens_per_s": counted["tokens"] / seconds,
            "requests": counted["requests"], "errors": counted["errors"], "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"), "error_samples": errors}


def metrics_of(url: str) -> dict[str, float]:
    import httpx

    samples = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def main() -> int:
    import torch

    from m3_integrations import M3Encoder
    from m3_integrations.testing import build_random_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=None, help="transformer layers (default: 4 CPU, 24 GPU)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured time before each level")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--texts", type=int, default=256, help="distinct texts the clients cycle through")
    parser.add_argument("--min-tokens", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="default: the encoder's (8192 / 32768)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--inproc-batch", type=int, default=None,
                        help="texts per in-process encode call (default: the largest client count)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    layers = args.layers or (24 if args.device.startswith("cuda") else 4)
    levels = [int(c) for c in args.clients.split(",")]
    inproc_batch = args.inproc_batch or max(levels)

    with tempfile.TemporaryDirectory(prefix="m3-bench-serve-") as tmp:
        model_dir = build_random_model(Path(tmp) / "model", num_layers=layers)
        encoder = M3Encoder(model_dir, device=args.device, max_batch_tokens=args.max_batch_tokens)
        max_batch_tokens = encoder.max_batch_tokens
        texts = make_corpus(encoder, args.texts, args.min_tokens, args.max_tokens)
        tokens = encoder.count_tokens(texts)
        device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
        print(f"model: random BGE-M3 width (hidden 1024, FFN 4096), {layers} layers, {encoder.dtype} on "
              f"{args.device} ({device_name}); torch threads {torch.get_num_threads()}, cores {os.cpu_count()}")
        print(f"texts: {len(texts)} of {args.min_tokens}-{args.max_tokens} tokens (mean "
              f"{statistics.fmean(tokens):.0f}); {args.seconds:.0f} s per level after {args.warmup:.0f} s warm-up; "
              f"max_batch_tokens {max_batch_tokens}, max_wait_ms {args.max_wait_ms}")
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(model_dir), args.device, str(max_batch_tokens), str(args.max_wait_ms)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            url = server.stdout.readline().strip()
            if not url.startswith("http://"):
                raise RuntimeError("the service did not start")
            rows = []
            for clients in levels:
                # the reference right before each level (the service idle), so that a machine whose load
                # changes during the run compares like with like
                reference = in_process(encoder, texts, tokens, args.seconds, inproc_batch)
                before = metrics_of(url)
                row = asyncio.run(load(url, texts, tokens, clients, args.seconds, args.warmup))
                after = metrics_of(url)
                batches = after["m3_batches_total"] - before["m3_batches_total"]
                row["mean_texts_per_batch"] = (after["m3_texts_total"] - before["m3_texts_total"]) / max(batches, 1)
                row["in_process_tokens_per_s"] = reference["tokens_per_s"]
                row["vs_in_process"] = row["tokens_per_s"] / reference["tokens_per_s"]
                rows.append(row)
                print(f"{clients:>3} clients: {row['tokens_per_s']:>9,.0f} tokens/s vs in-process "
                      f"{reference['tokens_per_s']:,.0f} ({inproc_batch} texts per call) = {row['vs_in_process']:.0%}"
                      f"; {row['texts_per_s']:6.1f} texts/s, p50 {row['p50_ms']:7.1f} ms, p99 {row['p99_ms']:7.1f} ms"
                      f", {row['mean_texts_per_batch']:.1f} texts/encoder call, {row['errors']} errors of "
                      f"{row['requests']}")
                for sample in row["error_samples"]:
                    print(f"    error: {sample}")
        finally:
            server.terminate()
            server.wait(60)
    if args.json:
        args.json.write_text(json.dumps({
            "device": args.device, "device_name": device_name, "layers": layers, "texts": len(texts),
            "min_tokens": args.min_tokens, "max_tokens": args.max_tokens, "seconds": args.seconds,
            "max_batch_tokens": max_batch_tokens, "max_wait_ms": args.max_wait_ms, "cores": os.cpu_count(),
            "inproc_batch": inproc_batch, "levels": rows}, indent=2))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
