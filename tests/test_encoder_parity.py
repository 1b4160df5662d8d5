"""Parity with the reference implementation (FlagEmbedding.BGEM3FlagModel, fp32, CPU) on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from m3_integrations import M3Encoder, compute_scores

TOL = 1e-5

TEXTS = [
    "BGE-M3 gives dense, sparse and multi-vector representations from one forward pass.",
    "Le renard brun rapide saute par-dessus le chien paresseux près de la rivière.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Быстрая коричневая лиса прыгает через ленивую собаку у реки.",
    "敏捷的棕色狐狸跳过了河边那只懒惰的狗。",
    "素早い茶色の狐が川辺で怠け者の犬を飛び越える。",
    "الثعلب البني السريع يقفز فوق الكلب الكسول",
    "the",  # one token between <s> and </s>
    "",  # only <s> </s>
    "Hybrid retrieval combines lexical matching with semantic similarity. " * 30,  # longer than max_length
    "The quick brown fox <mask> jumps; numbers 2024 and 3.14 appear.",
]


def _import_reference() -> tuple[type | None, str]:
    """FlagEmbedding's BGEM3FlagModel, or why it cannot be imported (named once, by the test below)."""
    try:
        from FlagEmbedding import BGEM3FlagModel
    except Exception as exc:  # an upstream release can break the reference's import in any way
        from importlib.metadata import PackageNotFoundError, version

        import transformers

        try:
            flag_version = version("FlagEmbedding")
        except PackageNotFoundError:
            flag_version = "(not installed)"
        missing = f" (missing module {exc.name!r})" if isinstance(exc, ImportError) and exc.name else ""
        return None, (
            f"the reference implementation FlagEmbedding {flag_version} cannot be imported with transformers "
            f"{transformers.__version__}{missing}: {type(exc).__name__}: {exc}. Install the test environment "
            f"from the committed constraints (see README, 'Running the tests')"
        )
    return BGEM3FlagModel, ""


REFERENCE_CLASS, REFERENCE_PROBLEM = _import_reference()


def test_reference_implementation_imports():
    """Every parity test below needs FlagEmbedding; when it cannot be imported this one test says why."""
    if REFERENCE_CLASS is None:
        pytest.fail(REFERENCE_PROBLEM, pytrace=False)


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    if REFERENCE_CLASS is None:
        pytest.skip("FlagEmbedding cannot be imported: see test_reference_implementation_imports")
    return REFERENCE_CLASS(str(tiny_model_dir), use_fp16=False, devices="cpu")


def _reference_encode(reference, texts, max_length):
    return reference.encode(texts, max_length=max_length, return_dense=True, return_sparse=True,
                            return_colbert_vecs=True)


def test_one_token_and_empty_texts_have_the_expected_token_counts(encoder):
    assert encoder.count_tokens(["the", ""]) == [3, 2]


@pytest.mark.parametrize("max_length", [1024, 24])
def test_dense_sparse_colbert_match_reference(encoder, reference, max_length):
    ref = _reference_encode(reference, TEXTS, max_length)
    with pytest.warns(UserWarning, match="truncated") if max_length == 24 else _no_warning():
        encoder._warned_truncation = False
        out = encoder.encode(TEXTS, max_length=max_length)

    assert out.dense.dtype == np.float32 and out.dense.shape == ref["dense_vecs"].shape
    assert np.abs(out.dense - ref["dense_vecs"]).max() <= TOL
    np.testing.assert_allclose(np.linalg.norm(out.dense, axis=1), 1.0, atol=1e-5)

    for i, (ours, theirs) in enumerate(zip(out.colbert, ref["colbert_vecs"], strict=True)):
        assert ours.shape == theirs.shape, f"text {i}: ColBERT rows differ"
        assert np.abs(ours - theirs).max() <= TOL, f"text {i}"

    for i, (ours, theirs) in enumerate(zip(out.sparse, ref["lexical_weights"], strict=True)):
        assert all(isinstance(k, int) for k in ours)
        assert set(ours) == {int(k) for k in theirs}, f"text {i}: sparse token ids differ"
        for token, weight in ours.items():
            assert abs(weight - float(theirs[str(token)])) <= TOL, f"text {i}, token {token}"


def test_truncation_matches_reference_token_counts(encoder, reference):
    long_text = TEXTS[9]
    out = encoder.encode([long_text], max_length=24)
    ref = _reference_encode(reference, [long_text], 24)
    assert out.colbert[0].shape[0] == 23 == ref["colbert_vecs"][0].shape[0]


@pytest.mark.parametrize("weights", [(0.4, 0.2, 0.4), (1.0, 1.0, 1.0), (1.0, 0.3, 1.0)])
def test_scores_match_reference_compute_score(encoder, reference, weights):
    pairs = [(TEXTS[0], TEXTS[0][:40]), (TEXTS[1], TEXTS[2]), (TEXTS[3], TEXTS[3]), ("the", TEXTS[10]),
             (TEXTS[4], TEXTS[5])]
    for query, passage in pairs:
        ref = reference.compute_score([query, passage], max_query_length=512, max_passage_length=512,
                                      weights_for_different_modes=list(weights))
        ours = compute_scores(encoder.encode_queries([query]), encoder.encode_documents([passage]), weights)
        for key in ("dense", "sparse", "colbert", "sparse+dense", "colbert+sparse+dense"):
            assert abs(ours[key] - ref[key]) <= TOL, (query[:20], passage[:20], key, ours[key], ref[key])
    # the pairs exercise non-zero lexical matches, or the sparse check would be vacuous
    assert compute_scores(encoder.encode([pairs[0][0]]), encoder.encode([pairs[0][1]]))["sparse"] > 0


def test_colbert_score_matches_reference_colbert_score(encoder, reference):
    q = encoder.encode_queries([TEXTS[1]]).colbert[0]
    d = encoder.encode_documents([TEXTS[2]]).colbert[0]
    from m3_integrations import colbert_score

    assert abs(colbert_score(q, d) - float(reference.colbert_score(q, d))) <= TOL


def test_batching_does_not_change_outputs(tiny_model_dir, encoder):
    small = M3Encoder(tiny_model_dir, device="cpu", max_batch_tokens=40, max_batch_size=3)
    a, b = encoder.encode(TEXTS, max_length=64), small.encode(TEXTS, max_length=64)
    assert small.stats.forward_passes > 3
    assert np.abs(a.dense - b.dense).max() <= TOL
    assert all(np.abs(x - y).max() <= TOL for x, y in zip(a.colbert, b.colbert, strict=True))
    assert [set(x) for x in a.sparse] == [set(y) for y in b.sparse]


def test_padded_layers_match_packed_layers(tiny_model_dir, encoder, reference):
    """The GPU layout (whole layers on the padded batch) gives the packed layout's and the reference's
    outputs; checked here on CPU, so CI covers the math of the GPU path."""
    padded = M3Encoder(tiny_model_dir, device="cpu")
    padded._net.pad_layers = True
    a, b = encoder.encode(TEXTS, max_length=64), padded.encode(TEXTS, max_length=64)
    assert np.abs(a.dense - b.dense).max() <= TOL
    assert all(np.abs(x - y).max() <= TOL for x, y in zip(a.colbert, b.colbert, strict=True))
    assert [set(x) for x in a.sparse] == [set(y) for y in b.sparse]
    ref = _reference_encode(reference, TEXTS, 64)
    assert np.abs(b.dense - ref["dense_vecs"]).max() <= TOL


def test_outputs_depend_on_the_input(encoder):
    out = encoder.encode(TEXTS[:4])
    cos = out.dense @ out.dense.T
    assert cos[np.triu_indices(4, 1)].max() < 0.999  # a degenerate random model would give ~1.0


class _no_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", UserWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        return False
