"""Malformed input gets an error that names the problem, through the API and the ``m3`` CLI, and stored data
is unchanged afterwards (real Qdrant Edge, real milvus-lite, the tiny model)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from m3_integrations import qdrant, validate_weights
from m3_integrations.cli import main

GOOD = [{"id": f"g{i}", "text": f"good document {i} about rivers", "metadata": {"i": i}} for i in range(6)]
SURROGATE = "river \ud800 bank"  # a lone surrogate at character 6, as json.loads('"\\ud800"') makes it


def run_cli(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def edge(tmp_path_factory, encoder):
    store = qdrant.QdrantEdgeStore(tmp_path_factory.mktemp("bad") / "edge")
    qdrant.upsert_documents(store, GOOD, "docs", encoder)
    yield store
    store.close()


@pytest.fixture(scope="module")
def lite(tmp_path_factory, encoder):
    pytest.importorskip("milvus_lite")
    from m3_integrations import milvus

    client = milvus.connect(tmp_path_factory.mktemp("bad") / "m3.db")
    milvus.upsert_documents(client, GOOD, "docs", encoder)
    yield client
    client.close()


def _snapshot(module, client) -> list[tuple]:
    docs = module.get_documents(client, "docs")
    return sorted((d.id, d.text, json.dumps(d.metadata, sort_keys=True)) for d in docs)


@pytest.fixture(params=["edge", "lite"])
def store(request, edge, encoder):
    if request.param == "edge":
        return qdrant, edge
    from m3_integrations import milvus

    return milvus, request.getfixturevalue("lite")


# ------------------------------------------------------------------------------------------- lone surrogates
def test_lone_surrogate_in_a_document_names_its_position_id_and_code_point(store, encoder):
    module, client = store
    before = _snapshot(module, client)
    docs = [{"id": "new-ok", "text": "fine"}, {"id": "bad", "text": SURROGATE}]
    with pytest.raises(ValueError) as info:
        module.upsert_documents(client, docs, "docs", encoder)
    message = str(info.value)
    assert "docs[1] (id 'bad') text" in message and "U+D800" in message and "character 6" in message
    assert _snapshot(module, client) == before  # checked before anything was written: not even 'new-ok'
    with pytest.raises(ValueError, match=r"docs\[0\] text has a lone surrogate U\+DC80 at character 0"):
        module.upsert_documents(client, ["\udc80 escaped byte"], "docs", encoder)
    with pytest.raises(ValueError, match=r"docs\[0\] id has a lone surrogate U\+D800 at character 1"):
        module.upsert_documents(client, [{"id": "a\ud800", "text": "ok"}], "docs", encoder)
    with pytest.raises(ValueError, match=r"metadata\['note'\] has a lone surrogate U\+D800"):
        module.upsert_documents(client, [{"text": "ok", "metadata": {"note": SURROGATE}}], "docs", encoder)
    assert _snapshot(module, client) == before


def test_lone_surrogate_in_a_query_or_encoder_input(edge, encoder):
    with pytest.raises(ValueError, match=r"has a lone surrogate U\+D800 at character 6"):
        qdrant.hybrid_search(edge, SURROGATE, "docs", encoder)
    with pytest.raises(ValueError, match=r"texts\[1\] has a lone surrogate U\+D800 at character 6"):
        encoder.encode(["fine", SURROGATE])


def test_lone_surrogate_in_a_generator_stops_at_that_document(edge, encoder):
    before = _snapshot(qdrant, edge)

    def docs():
        yield {"id": "gen-bad", "text": SURROGATE}

    with pytest.raises(ValueError, match=r"docs\[0\] \(id 'gen-bad'\) text has a lone surrogate U\+D800"):
        qdrant.upsert_documents(edge, docs(), "docs", encoder)
    assert _snapshot(qdrant, edge) == before


# ---------------------------------------------------------------------------------------------- metadata
@pytest.mark.parametrize(("metadata", "error", "named"), [
    ({"tags": {"a", "b"}}, TypeError, r"metadata\['tags'\] is a set: .*use a sorted list"),
    ({"score": float("nan")}, ValueError, r"metadata\['score'\] is nan: metadata numbers must be finite"),
    ({"deep": {"x": [1, float("inf")]}}, ValueError, r"metadata\['deep'\]\['x'\]\[1\] is inf"),
    ({"when": object()}, TypeError, r"metadata\['when'\] is a object"),
    ({"nested": {1: "x"}}, TypeError, r"metadata\['nested'\] has the key 1 \(int\); metadata keys must be strings"),
])
def test_metadata_that_is_not_json_is_named(store, encoder, metadata, error, named):
    module, client = store
    before = _snapshot(module, client)
    with pytest.raises(error, match=r"docs\[1\] \(id 'm'\) " + named):
        module.upsert_documents(client, [{"id": "ok", "text": "fine"}, {"id": "m", "text": "x", "metadata": metadata}],
                                "docs", encoder)
    assert _snapshot(module, client) == before


# ----------------------------------------------------------------------------------------------- weights
def test_weights_as_a_string_are_parsed_or_rejected_by_name(store, encoder):
    module, client = store
    as_text = module.hybrid_search(client, "rivers", "docs", encoder, limit=3, weights="0.4, 0.2, 0.4")
    as_tuple = module.hybrid_search(client, "rivers", "docs", encoder, limit=3, weights=(0.4, 0.2, 0.4))
    assert [(h.id, h.score) for h in as_text] == [(h.id, h.score) for h in as_tuple]
    for weights, named in [("0.4,0.2", "got 2"), ("0.4;0.2;0.4", "comma-separated"), ("a,b,c", "comma-separated"),
                           ("0.4,-1,0.4", "must not be negative"), ("nan,1,1", "must be finite"),
                           ("0,0,0", "must not all be zero"), ("1,inf,1", "must be finite")]:
        with pytest.raises(ValueError, match=f"weights .*{named}"):
            module.hybrid_search(client, "rivers", "docs", encoder, weights=weights)
    with pytest.raises(TypeError, match="weights must be three numbers"):
        validate_weights([0.4, "x", 0.4])


# ------------------------------------------------------------------------------------------------ client
def test_client_none_is_named(encoder):
    from m3_integrations import milvus

    for module in (qdrant, milvus):
        for call in (lambda m: m.upsert_documents(None, GOOD, "docs", encoder),
                     lambda m: m.hybrid_search(None, "rivers", "docs", encoder),
                     lambda m: m.count_documents(None, "docs")):
            with pytest.raises(TypeError, match="NoneType") as info:
                call(module)
            assert ("MilvusClient" if module is milvus else "QdrantClient") in str(info.value)


# ------------------------------------------------------------------------------------- native Milvus filter
def test_native_milvus_filter_syntax_error_is_a_filter_error(lite, encoder):
    from m3_integrations import milvus

    before = _snapshot(milvus, lite)
    for bad in ('metadata["i"] ==', "metadata['i'] = 1", "doc_id in [1,"):
        for call in (lambda f: milvus.hybrid_search(lite, "rivers", "docs", encoder, query_filter=f),
                     lambda f: milvus.count_documents(lite, "docs", query_filter=f),
                     lambda f: milvus.get_documents(lite, "docs", query_filter=f),
                     lambda f: milvus.delete_by_filter(lite, f, "docs")):
            with pytest.raises(milvus.FilterError) as info:
                call(bad)
            message = str(info.value)
            assert bad in message and info.value.expression.find(bad) >= 0
            assert "Milvus could not run the filter" in message and "column" in message  # the server's words
            assert isinstance(info.value, ValueError)
    assert _snapshot(milvus, lite) == before
    # a valid native expression still works
    assert milvus.count_documents(lite, "docs", query_filter='metadata["i"] >= 3') == 3


# ------------------------------------------------------------------------------------------------- limits
def test_limit_above_the_engine_window_is_rejected(edge, lite, encoder):
    from m3_integrations import milvus

    for limit in (16_385, int(3e7)):
        with pytest.raises(ValueError, match=f"limit={limit} is above 16,384, the most results Milvus returns"):
            milvus.hybrid_search(lite, "rivers", "docs", encoder, limit=limit)
    with pytest.raises(ValueError, match="prefetch_limit=20000 is above 16,384"):
        milvus.hybrid_search(lite, "rivers", "docs", encoder, prefetch_limit=20_000)
    assert len(milvus.hybrid_search(lite, "rivers", "docs", encoder, limit=16_384)) == len(GOOD)
    with pytest.raises(ValueError, match="limit=100001 is above 100,000, the most results Qdrant returns"):
        qdrant.hybrid_search(edge, "rivers", "docs", encoder, limit=100_001)
    for module, client in ((qdrant, edge), (milvus, lite)):
        with pytest.raises(TypeError, match=r"limit must be an int, got 30000000.0"):
            module.hybrid_search(client, "rivers", "docs", encoder, limit=3e7)
        with pytest.raises(ValueError, match="limit must be positive, got 0"):
            module.hybrid_search(client, "rivers", "docs", encoder, limit=0)


# ---------------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, tiny_model_dir):
    """An embedded index of a JSONL file whose second record has a lone surrogate and third a NaN field."""
    root = tmp_path_factory.mktemp("cli-bad")
    corpus = root / "corpus"
    corpus.mkdir()
    lines = ['{"id": "r1", "text": "first record about rivers"}',
             '{"id": "r2", "text": "broken \\ud800 record"}',
             '{"id": "r3", "text": "third record about foxes", "score": NaN, "lang": "en"}',
             '{"id": "r4", "text": "fourth \\udfff"}']
    (corpus / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = root / "index"
    result = run_cli(["index", corpus, "--db", db, "--model", tiny_model_dir, "--no-progress"])
    return db, result


def test_cli_index_names_the_file_and_record_and_goes_on(cli_index):
    db, (code, out, err) = cli_index
    assert code == 0, err
    assert "records.jsonl: record 2 skipped: its text has a lone surrogate U+D800 at character 7" in err
    assert "records.jsonl: record 4 skipped: its text has a lone surrogate U+DFFF" in err
    assert "records.jsonl: record 3: field 'score' is nan" in err
    with qdrant.QdrantEdgeStore(db / "qdrant-edge") as store:
        docs = qdrant.get_documents(store, "docs")
    assert sorted(d.metadata["doc_id"] for d in docs) == ["r1", "r3"]
    r3 = next(d for d in docs if d.metadata["doc_id"] == "r3")
    assert r3.metadata["lang"] == "en" and "score" not in r3.metadata


def test_cli_search_names_bad_weights_limits_and_queries(cli_index, tiny_model_dir):
    db, _ = cli_index
    code, out, err = run_cli(["search", "rivers", "--db", db, "--weights", "0.4,x,0.4"])
    assert code == 2 and "--weights must be three numbers" in err
    code, out, err = run_cli(["search", "rivers", "--db", db, "-k", "100001"])
    assert code == 1 and "limit=100001 is above 100,000" in err
    code, out, err = run_cli(["search", "river \ud800", "--db", db])
    assert code == 1 and "U+D800" in err
    code, out, err = run_cli(["search", "rivers", "--db", db, "--weights", "0.4,0.2,0.4", "--json"])
    assert code == 0, err
    assert {h["doc_id"] for h in json.loads(out)} == {"r1", "r3"}


def test_cli_milvus_limit_window(tmp_path, tiny_model_dir):
    pytest.importorskip("milvus_lite")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("rivers and foxes", encoding="utf-8")
    db = tmp_path / "index"
    code, out, err = run_cli(["index", corpus, "--db", db, "--store", "milvus", "--model", tiny_model_dir,
                              "--no-progress"])
    assert code == 0, err
    code, out, err = run_cli(["search", "rivers", "--db", db, "-k", "20000"])
    assert code == 1 and "limit=20000 is above 16,384, the most results Milvus returns" in err
    assert Path(db / "milvus.db").exists()
