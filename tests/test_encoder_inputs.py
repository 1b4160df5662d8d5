"""Bad input, empty input, truncation warnings, thread safety, async, cache, memory on long inputs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from m3_integrations import M3Encoder, M3Output


def test_empty_list_gives_empty_output_of_the_right_shapes(encoder):
    out = encoder.encode([])
    assert out.dense.shape == (0, encoder.dim) and out.dense.dtype == np.float32
    assert out.sparse == [] and out.colbert == [] and len(out) == 0


def test_none_is_a_type_error(encoder):
    with pytest.raises(TypeError, match="texts must be"):
        encoder.encode(None)


@pytest.mark.parametrize("bad", [None, 3, b"bytes"])
def test_non_str_item_is_a_type_error_naming_the_index(encoder, bad):
    with pytest.raises(TypeError, match=r"texts\[2\] is"):
        encoder.encode(["a", "b", bad])


def test_single_string_is_a_batch_of_one(encoder):
    assert len(encoder.encode("hello world")) == 1


def test_max_length_bounds(encoder):
    with pytest.raises(ValueError, match="max_length must be between 2 and 8192"):
        encoder.encode(["a"], max_length=9000)
    with pytest.raises(TypeError, match="max_length must be an int"):
        encoder.encode(["a"], max_length="10")


def test_nothing_asked_for(encoder):
    with pytest.raises(ValueError, match="at least one"):
        encoder.encode(["a"], return_dense=False, return_sparse=False, return_colbert=False)


def test_truncation_warns_once(tiny_model_dir):
    enc = M3Encoder(tiny_model_dir, device="cpu")
    long = "hybrid retrieval " * 100
    with pytest.warns(UserWarning, match="truncated"):
        out = enc.encode([long, "short"], max_length=16)
    assert out.colbert[0].shape[0] == 15
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.encode([long], max_length=16)


def test_query_and_document_default_lengths(tiny_model_dir):
    enc = M3Encoder(tiny_model_dir, device="cpu", query_max_length=8, document_max_length=16)
    long = "hybrid retrieval " * 50
    with pytest.warns(UserWarning):
        assert enc.encode_queries([long]).colbert[0].shape[0] == 7
    assert enc.encode_documents([long]).colbert[0].shape[0] == 15


def test_encode_is_thread_safe(encoder):
    texts = [f"document number {i} about topic {i % 7}" for i in range(40)]
    expected = encoder.encode(texts)
    results: dict[int, M3Output] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for _ in range(3):
                results[worker] = encoder.encode(texts[worker::4] + texts[: worker + 1])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for worker, out in results.items():
        want = expected[list(range(len(texts)))[worker::4] + list(range(worker + 1))]
        assert np.abs(out.dense - want.dense).max() <= 1e-5
        assert [set(s) for s in out.sparse] == [set(s) for s in want.sparse]


async def test_aencode_does_not_block_the_event_loop(encoder):
    texts = [f"text {i} " * 40 for i in range(300)]
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    out = await encoder.aencode(texts)
    elapsed = time.perf_counter() - start
    task.cancel()
    assert len(out) == 300
    assert elapsed > 0.05 and ticks >= 5, (elapsed, ticks)


def test_cache_runs_each_text_once(tiny_model_dir):
    enc = M3Encoder(tiny_model_dir, device="cpu")
    enc.enable_cache(100)
    dense_only = enc.encode(["alpha", "beta", "alpha"], return_sparse=False, return_colbert=False)
    assert enc.stats.texts == 2
    full = enc.encode(["beta", "alpha"])
    assert enc.stats.texts == 2  # no new forward work
    assert np.array_equal(full.dense[1], dense_only.dense[0]) and full.sparse[0] and len(full.colbert) == 2
    enc.disable_cache()
    enc.encode(["alpha"])
    assert enc.stats.texts == 3


def test_long_input_never_allocates_a_vocab_sized_tensor_per_token(tmp_path):
    """8192 tokens with BGE-M3's full 250002-token vocabulary: a [1, 8192, 250002] float tensor is 8 GB."""
    script = f"""
import resource, sys
from m3_integrations import M3Encoder
from m3_integrations.testing import build_random_model
d = build_random_model({str(tmp_path / 'm')!r}, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                       vocab_size=250002, init_std=0.2)
enc = M3Encoder(d, device='cpu')
text = ' '.join(f'w{{i}} hybrid' for i in range(6000))
assert enc.count_tokens([text])[0] > 8192
enc.encode(['warm up'])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = enc.encode([text], max_length=8192)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert out.colbert[0].shape[0] == 8191 and len(out.sparse[0]) > 0
print((peak - before) / 1024)
"""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    growth_mib = float(done.stdout.strip().splitlines()[-1])
    assert growth_mib < 1024, f"peak RSS grew by {growth_mib:.0f} MiB for one 8192-token text"
