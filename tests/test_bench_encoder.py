"""The encoder benchmark's own arithmetic: the corpus it times, the FLOPs its matmul-bound limit divides, and the
profile breakdown it reports (the speed numbers themselves live in docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from m3_integrations.encoder.encoder import CPU_BATCH_TOKENS

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_encoder.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_encoder_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_word_corpus_has_the_asked_shape_and_is_repeatable(bench):
    texts = bench.make_word_corpus(40, 8, 260, seed=3)
    counts = [len(t.split()) for t in texts]
    assert len(texts) == 40 and min(counts) >= 8 and max(counts) <= 260
    assert max(counts) - min(counts) > 100  # spread over the range, not one length
    assert bench.make_word_corpus(40, 8, 260, seed=3) == texts
    assert bench.make_word_corpus(40, 8, 260, seed=4) != texts


def test_model_flops_counts_linear_layers_attention_and_heads(bench, encoder):
    net = encoder._net
    h, inter, layers = net.hidden, net.layers[0].ffn_in_w.shape[0], net.num_layers
    lengths = [5, 9]
    per_token_layer = 2 * (h * 3 * h + h * h + h * inter + inter * h)  # QKV, attention out, FFN in, FFN out
    attention = sum(2 * 2 * n * n * h for n in lengths)  # QK^T and AV
    heads = 2 * (h * h + h) * sum(lengths)  # ColBERT (h x h) and sparse (h x 1)
    expected = (per_token_layer * sum(lengths) + attention) * layers + heads
    assert bench.model_flops(encoder, lengths) == pytest.approx(expected)
    assert bench.model_flops(encoder, [14]) > bench.model_flops(encoder, lengths)  # attention grows with L^2


def test_profile_breakdown_accounts_for_all_op_time(bench, tiny_model_dir):
    from m3_integrations import M3Encoder

    encoder = M3Encoder(tiny_model_dir, device="cpu")  # its own: other tests turn the shared one's output cache on
    texts = ["hybrid retrieval with dense and sparse vectors"] * 3 + ["a longer text " * 20]
    report = bench.profile_ours(lambda: encoder.encode(texts), encoder, texts)
    parts = report["by_category_s"]
    assert parts["GEMMs (linear layers, heads)"] > 0 and parts["attention (SDPA)"] > 0
    assert sum(parts.values()) == pytest.approx(report["op_time_s"], abs=1e-4)
    assert all(v >= 0 for v in parts.values())


def test_cpu_model_names_the_processor(bench):
    name = bench.cpu_model()
    assert isinstance(name, str) and name.strip() and "family" in name or Path("/proc/cpuinfo").exists() is False


def test_cpu_batch_keeps_the_ffn_activation_within_glibc_mmap_threshold():
    # BGE-M3's FFN is 4096 wide: a full CPU batch's activation must stay <= 32 MiB (the most glibc's dynamic mmap
    # threshold grows to), or every layer's activation comes back as fresh, page-faulting memory (docs/benchmarks.md)
    assert CPU_BATCH_TOKENS * 4096 * 4 <= 32 * 2**20
