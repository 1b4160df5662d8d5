"""ColBERT token pooling: the same clusters as SciPy's Ward linkage, unit rows, documents of any length."""

from __future__ import annotations

import numpy as np
import pytest

from m3_integrations.encoder.pooling import check_pool_factor, pool_colbert, pool_output, pooled_length

hierarchy = pytest.importorskip("scipy.cluster.hierarchy")


def _unit(rng, n, dim=16):
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _scipy_pool(m: np.ndarray, factor: int) -> np.ndarray:
    k = pooled_length(len(m), factor)
    if len(m) < 2 or k == len(m):
        return m
    labels = hierarchy.fcluster(hierarchy.linkage(m.astype(np.float64), method="ward"), t=k, criterion="maxclust")
    first = {}
    for row, label in enumerate(labels):
        first.setdefault(label, row)
    pooled = [m[labels == label].mean(0) for label in sorted(first, key=first.get)]
    pooled = np.stack(pooled)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_pooling_equals_scipy_ward_maxclust(factor):
    rng = np.random.default_rng(factor)
    docs = [_unit(rng, n) for n in (1, 2, 3, 7, 31, 64, 100, 2)]
    ours = pool_colbert(docs, factor)
    for doc, pooled in zip(docs, ours, strict=True):
        expected = _scipy_pool(doc, factor)
        assert pooled.shape == (pooled_length(len(doc), factor), doc.shape[1]) == expected.shape
        np.testing.assert_allclose(pooled, expected, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)


def test_pooling_is_deterministic_and_batch_independent():
    rng = np.random.default_rng(7)
    docs = [_unit(rng, n, 32) for n in (40, 5, 256, 17)]
    together = pool_colbert(docs, 2)
    alone = [pool_colbert([d], 2)[0] for d in docs]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    again = pool_colbert(docs, 2)
    assert all(np.array_equal(a, b) for a, b in zip(together, again, strict=True))


def test_repeated_directions_pool_back_to_those_directions():
    rng = np.random.default_rng(3)
    directions = _unit(rng, 5, 64)
    doc = np.repeat(directions, 3, axis=0) + rng.normal(0, 1e-4, (15, 64)).astype(np.float32)
    pooled = pool_colbert([doc], 3)[0]  # 15 rows -> 5: each cluster is one direction's three copies
    np.testing.assert_allclose(pooled, directions, atol=1e-3)


def test_factor_one_is_the_identity_and_bad_factors_are_named():
    docs = [np.eye(3, dtype=np.float32)]
    assert pool_colbert(docs, 1)[0] is docs[0]
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(ValueError, match="colbert_pool_factor"):
            check_pool_factor(bad)


def test_pool_output_keeps_dense_and_sparse(encoder):
    out = encoder.encode_documents(["BGE-M3 stores ColBERT rows per token in a vector database."])
    pooled = pool_output(out, 2)
    assert pooled.dense is out.dense and pooled.sparse is out.sparse
    assert len(pooled.colbert[0]) == len(out.colbert[0]) // 2
