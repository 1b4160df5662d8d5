"""Ray Data ingest (``m3_integrations.ray``) with 1 and 2 encoder actors vs in-process ``upsert_documents``.

The same corpus goes, in the same run, (a) through ``upsert_documents`` in this process (the reference: one
encoder, encode-ahead batching), then (b) through ``ingest_dataset`` on a local Ray with 1, then 2 actors
(default 1 / 2, ``--actors``). The store is Qdrant Edge (written by the driver), so every variant writes the
same way and the difference is the encoding fan-out. Each timing includes loading the model (in the actors for
Ray) and, for Ray, shipping rows and encoded vectors through the object store: what a user waits for.
Claims are ratios against (a) and against 1 actor.

BGE-M3 weights cannot be downloaded here: the model is a random one of BGE-M3's width (hidden 1024, FFN 4096)
with ``--layers`` layers; the real model has 24, so encoding weighs more and Ray's fixed costs less.

    python bench/bench_ray.py --texts 300 --layers 2                              # CPU (this machine)
    python bench/bench_ray.py --texts 20000 --layers 24 --device cuda --num-gpus 1 --actors 1 --batch-size 512
        # one GPU: 1 actor; on a machine with G GPUs: --actors 1,G
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

WORDS = ("tides moon volcano lava espresso coffee chess opening qdrant vector sparse dense colbert retrieval "
         "bread starter basalt ocean planet orbit river fox hybrid search semantic lexical").split()


def make_texts(n: int, min_words: int, max_words: int) -> list[str]:
    """``n`` distinct texts of ``min_words``-``max_words`` words (deterministic)."""
    span = max_words - min_words + 1
    return [f"Text {i}. " + " ".join(WORDS[(i * 7 + j * 3 + j * j) % len(WORDS)]
                                     for j in range(min_words + (i * 37) % span)) for i in range(n)]


def start_ray(temp: str, cpus: int) -> None:
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


def actor_threads(num_cpus: float, num_gpus: float) -> int:
    """The torch threads an actor with these resources gets (Ray sets OMP_NUM_THREADS from ``num_cpus``)."""
    import ray

    @ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return ray.get(threads.remote())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-words", type=int, default=180)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor")
    parser.add_argument("--num-cpus", type=float, default=None, help="CPUs per actor (default: ingest_dataset's)")
    parser.add_argument("--actors", default="1,2", help="actor counts to measure, e.g. 1,2 or 1,8")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per Ray batch and per upsert batch")
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count(), help="CPUs the local Ray may use")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from m3_integrations import M3Encoder
    from m3_integrations.qdrant import QdrantEdgeStore, count_documents, upsert_documents
    from m3_integrations.ray import QdrantTarget, ingest_dataset
    from m3_integrations.testing import build_random_model

    tmp = Path(tempfile.mkdtemp(prefix="m3br", dir="/tmp"))
    try:
        start_ray(str(tmp / "ray"), args.ray_cpus)
        import ray

        model_dir = build_random_model(tmp / "model", num_layers=args.layers)
        texts = make_texts(args.texts, args.min_words, args.max_words)
        encoder_kwargs = {"device": args.device}
        results: dict = {"texts": len(texts), "layers": args.layers, "device": args.device,
                         "cores": os.cpu_count(), "batch_size": args.batch_size}

        started = time.perf_counter()
        encoder = M3Encoder(model_dir, **encoder_kwargs)
        with QdrantEdgeStore(tmp / "ref") as store:
            upsert_documents(store, texts, "docs", encoder, batch_size=args.batch_size, show_progress=False)
            assert count_documents(store, "docs") == len(texts)
        reference = time.perf_counter() - started
        tokens = sum(encoder.count_tokens(texts))
        results.update(tokens=tokens, torch_threads_in_process=__import__("torch").get_num_threads())
        del encoder
        print(f"{len(texts)} texts, {tokens:,} tokens; random BGE-M3-width model, {args.layers} layers, {args.device}")
        print(f"in-process upsert_documents: {reference:.1f} s ({len(texts) / reference:.1f} texts/s)")
        results["in_process_s"] = round(reference, 2)

        cpus = args.num_cpus if args.num_cpus is not None else (1.0 if args.num_gpus else 0.5)
        results["torch_threads_per_actor"] = actor_threads(cpus, args.num_gpus)
        runs = {}
        for n in (int(a) for a in args.actors.split(",")):
            started = time.perf_counter()
            report = ingest_dataset(ray.data.from_items([{"text": t} for t in texts]),
                                    QdrantTarget(path=tmp / f"ray{n}"), model_dir, concurrency=n,
                                    num_gpus=args.num_gpus, num_cpus=args.num_cpus, batch_size=args.batch_size,
                                    encoder_kwargs=encoder_kwargs)
            seconds = time.perf_counter() - started
            with QdrantEdgeStore(tmp / f"ray{n}") as store:
                assert count_documents(store, "docs") == len(texts) == report.written
            runs[n] = seconds
            print(f"Ray, {n} actor(s) ({cpus} CPU, {args.num_gpus} GPU, {results['torch_threads_per_actor']} torch "
                  f"threads each): {seconds:.1f} s ({len(texts) / seconds:.1f} texts/s) = "
                  f"{reference / seconds:.2f}x in-process" + (f", {runs[min(runs)] / seconds:.2f}x "
                                                              f"{min(runs)} actor(s)" if n != min(runs) else ""))
        results["ray_s"] = {str(n): round(s, 2) for n, s in runs.items()}
        results["speedup_vs_in_process"] = {str(n): round(reference / s, 3) for n, s in runs.items()}
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        try:
            import ray

            ray.shutdown()
        except ImportError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
