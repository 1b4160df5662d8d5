"""The ``m3`` command line, run for real: tiny model, embedded Qdrant Edge index in tmp_path.

Commands are called in-process through ``main([...])`` (one also as a subprocess, as a user runs it).
The index is then opened with the store adapter to check what was stored. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m3_integrations import weighted_score
from m3_integrations.cli import main
from m3_integrations.files import chunk_text
from m3_integrations.qdrant import Condition, QdrantEdgeStore, count_documents, delete_documents, get_documents

REPO = Path(__file__).resolve().parents[1]
CHUNK = ["--chunk-tokens", "40", "--chunk-overlap", "8"]
TOPICS = ["volcanoes erupt lava and ash", "sourdough bread needs a starter", "tides follow the moon",
          "espresso needs finely ground coffee", "chess openings control the centre", "qdrant stores vectors"]
LONG = " ".join(f"{TOPICS[i % 6]} sentence {i}." for i in range(40))


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def make_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "volcano.md").write_text("# Volcanoes\n\nShield volcanoes erupt runny basalt lava.\n", encoding="utf-8")
    (root / "tides.txt").write_text("Tides follow the moon and the sun.", encoding="utf-8")
    (root / "long.txt").write_text(LONG, encoding="utf-8")
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "espresso.md").write_text("Espresso needs finely ground coffee and nine bars.", encoding="utf-8")
    (root / "faq.jsonl").write_text(
        json.dumps({"id": "faq-1", "text": "Install torch first, then the package.", "topic": "install"}) + "\n"
        + json.dumps({"id": "faq-2", "text": "No server is needed for the embedded index.", "topic": "cli"}) + "\n"
        + json.dumps({"id": "faq-3", "body": "this record has no text field"}) + "\n", encoding="utf-8")
    (root / "glossary.csv").write_text('id,text,lang\ng-1,"Sparse vectors weight a few tokens.",en\n'
                                       'g-2,"Dense vectors encode meaning.",en\n', encoding="utf-8")
    (root / "report.pdf").write_bytes(b"%PDF-1.4 not indexed")
    (root / "empty.txt").write_text("   \n", encoding="utf-8")
    (root / ".hidden").mkdir(exist_ok=True)
    (root / ".hidden" / "secret.txt").write_text("never indexed", encoding="utf-8")
    return root


def expected_chunks(encoder, root: Path) -> int:
    tok = encoder.tokenizer.backend_tokenizer
    texts = [(root / n).read_text(encoding="utf-8") for n in ("volcano.md", "tides.txt", "long.txt", "sub/espresso.md")]
    texts += ["Install torch first, then the package.", "No server is needed for the embedded index.",
              "Sparse vectors weight a few tokens.", "Dense vectors encode meaning."]
    return sum(len(chunk_text(t, tok, 40, 8)) for t in texts)


@contextlib.contextmanager
def opened(db: Path):
    store = QdrantEdgeStore(db / "qdrant-edge")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_model_dir):
    """A corpus indexed once into an embedded index; the index output is kept for the checks."""
    base = tmp_path_factory.mktemp("cli")
    corpus = make_corpus(base / "corpus")
    db = base / "index"
    result = run(["index", corpus, "--db", db, "--model", tiny_model_dir, *CHUNK, "--no-progress"])
    return corpus, db, result


# ------------------------------------------------------------------------------------------- index
def test_index_stores_every_chunk_with_its_source(indexed, encoder):
    corpus, db, (code, out, err) = indexed
    assert code == 0, err
    assert "indexed 6 file(s)" in out and "6 new" in out
    assert "not indexed corpus/report.pdf: cannot read PDF" in err.replace(str(corpus.parent) + "/", "")
    assert "empty.txt: no text" in err
    assert "1 record(s) without a string 'text' field skipped" in err
    assert "secret" not in out + err
    with opened(db) as store:
        assert count_documents(store) == expected_chunks(encoder, corpus)
        long_chunks = get_documents(store, query_filter=Condition("source", "eq", (corpus / "long.txt").as_posix()))
        faq = get_documents(store, query_filter=Condition("doc_id", "eq", "faq-2"))
        csv_rows = get_documents(store, query_filter=Condition("lang", "eq", "en"))
    long_chunks.sort(key=lambda d: d.metadata["chunk"])
    assert len(long_chunks) > 3
    assert [d.metadata["chunk"] for d in long_chunks] == list(range(len(long_chunks)))
    assert {d.metadata["file_chunks"] for d in long_chunks} == {len(long_chunks)}
    assert all(d.metadata["doc_id"] == "long.txt" for d in long_chunks)
    for d in long_chunks:  # exact substrings of the file, within the token budget, overlapping
        assert d.text in LONG and len(encoder.tokenize(d.text)[0]) <= 42
    assert long_chunks[0].text.split()[-1] in long_chunks[1].text  # overlap
    assert long_chunks[-1].text.endswith("sentence 39.")
    assert [d.text for d in faq] == ["No server is needed for the embedded index."]
    assert faq[0].metadata["topic"] == "cli" and faq[0].metadata["record"] == 2
    assert sorted(d.metadata["doc_id"] for d in csv_rows) == ["g-1", "g-2"]
    config = json.loads((db / "m3.json").read_text())
    assert config["store"] == "qdrant-edge" and config["collections"]["docs"]["chunk_tokens"] == 40


def test_reindex_unchanged_adds_nothing(indexed, tiny_model_dir):
    corpus, db, _ = indexed
    with opened(db) as store:
        before = count_documents(store)
    code, out, err = run(["index", corpus, "--db", db])
    assert code == 0, err
    assert "nothing to do: 6 file(s) unchanged" in out
    with opened(db) as store:
        assert count_documents(store) == before


def _count(db: Path) -> int:
    code, out, err = run(["info", "--db", db, "--json"])
    assert code == 0, err
    return json.loads(out)["collections"][0]["count"]


def _chunks_of(db: Path, file: Path) -> list[str]:
    code, out, err = run(["search", "anything", "--db", db, "--json", "-k", "100",
                          "--where", f"source={file.as_posix()}"])
    assert code == 0, err
    return [h["text"] for h in sorted(json.loads(out), key=lambda h: h["chunk"])]


@pytest.mark.parametrize("store", ["qdrant-edge", "milvus"])
def test_changed_file_replaces_its_chunks(store, tmp_path, tiny_model_dir, encoder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "long.txt").write_text(LONG, encoding="utf-8")
    (corpus / "keep.md").write_text("Tides follow the moon.", encoding="utf-8")
    db = tmp_path / "db"
    code, _, err = run(["index", corpus, "--db", db, "--store", store, "--model", tiny_model_dir, *CHUNK])
    assert code == 0, err
    if store == "milvus":
        assert (db / "milvus.db").exists()
    tok = encoder.tokenizer.backend_tokenizer
    long_chunks = chunk_text(LONG, tok, 40, 8)
    assert _count(db) == len(long_chunks) + 1
    assert _chunks_of(db, corpus / "long.txt") == long_chunks

    # unchanged: nothing to do, and the chunk settings come from the index config (no flags repeated)
    code, out, _ = run(["index", corpus, "--db", db])
    assert code == 0 and "nothing to do: 2 file(s) unchanged" in out
    assert _count(db) == len(long_chunks) + 1

    shorter = "Volcanoes erupt lava."  # the file got shorter: one chunk instead of many
    (corpus / "long.txt").write_text(shorter, encoding="utf-8")
    code, out, err = run(["index", corpus, "--db", db])
    assert code == 0, err
    assert "1 replaced" in out and "1 unchanged" in out
    assert _count(db) == 2
    assert _chunks_of(db, corpus / "long.txt") == [shorter]

    (corpus / "long.txt").write_text(LONG + " The end.", encoding="utf-8")  # and longer again
    assert run(["index", corpus, "--db", db])[0] == 0
    assert _chunks_of(db, corpus / "long.txt") == chunk_text(LONG + " The end.", tok, 40, 8)
    assert _count(db) == len(chunk_text(LONG + " The end.", tok, 40, 8)) + 1


def test_partially_stored_file_is_completed(tmp_path, tiny_model_dir):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "long.txt").write_text(LONG, encoding="utf-8")
    db = tmp_path / "db"
    assert run(["index", corpus, "--db", db, "--model", tiny_model_dir, *CHUNK])[0] == 0
    with opened(db) as store:
        full = count_documents(store)
        victim = get_documents(store, query_filter=Condition("chunk", "eq", 2))[0]
        delete_documents(store, [victim.id])  # as if an earlier run died half-way through this file
        assert count_documents(store) == full - 1
    code, out, err = run(["index", corpus, "--db", db, *CHUNK])
    assert code == 0, err
    assert "indexed 1 file(s)" in out
    with opened(db) as store:
        assert count_documents(store) == full


def test_index_progress_covers_every_phase_with_rates(tmp_path, tiny_model_dir):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Tides follow the moon.", encoding="utf-8")
    code, out, err = run(["index", corpus, "--db", tmp_path / "db", "--model", tiny_model_dir, "--progress"])
    assert code == 0, err
    for phase in ("scan", "extract", "chunk", "encode"):
        assert phase in err
    assert "tokens/s" in err
    assert "files/s" in out and "chunks/s" in out and "tokens/s" in out


# ------------------------------------------------------------------------------------------ search
def test_search_table_shows_per_mode_scores_and_source(indexed):
    corpus, db, _ = indexed
    code, out, err = run(["search", "Tides follow the moon and the sun.", "--db", db, "-k", "3"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["#", "score", "dense", "sparse", "colbert", "source"]
    assert len([line for line in lines if line[:3].strip().isdigit()]) == 3
    assert "tides.txt#0" in lines[1]  # the query is that file's text: it comes first
    assert "Tides follow the moon" in lines[2]


def test_search_json_hits_carry_reference_scores(indexed):
    corpus, db, _ = indexed
    code, out, err = run(["search", "Espresso needs finely ground coffee and nine bars.", "--db", db, "--json",
                          "-k", "4", "--weights", "0.5,0.2,0.3"])
    assert code == 0, err
    hits = json.loads(out)
    assert len(hits) == 4
    assert set(hits[0]) >= {"id", "score", "text", "source", "scores"}
    assert hits[0]["source"] == (corpus / "sub" / "espresso.md").as_posix()
    assert hits[0]["scores"]["dense"] == pytest.approx(1.0, abs=1e-3)
    for hit in hits:
        s = hit["scores"]
        assert hit["score"] == pytest.approx(weighted_score(s["dense"], s["sparse"], s["colbert"], (0.5, 0.2, 0.3)),
                                             abs=2e-3)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert"])
def test_search_single_mode_and_filter(indexed, mode):
    _, db, _ = indexed
    code, out, err = run(["search", "server index", "--db", db, "--json", "--mode", mode, "--where", "topic=cli"])
    assert code == 0, err
    hits = json.loads(out)
    assert [h["metadata"]["doc_id"] for h in hits] == ["faq-2"]
    assert list(hits[0]["scores"]) == [mode]


def test_search_rrf_runs(indexed):
    _, db, _ = indexed
    code, out, _ = run(["search", "coffee", "--db", db, "--fusion", "rrf", "-k", "2"])
    assert code == 0 and out.count("\n") == 5


def test_search_as_a_subprocess(indexed):
    """As a user runs it (``m3`` is ``m3_integrations.cli:main``): stdout is the JSON, exit code 0."""
    _, db, _ = indexed
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "m3_integrations.cli", "search", "moon", "--db", str(db), "--json",
                           "-k", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 2


# -------------------------------------------------------------------------------------------- eval
def test_eval_reports_every_mode_and_the_best_weights(indexed, tmp_path):
    _, db, _ = indexed
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"id": "q1", "text": "Tides follow the moon and the sun."},
        {"id": "q2", "text": "No server is needed for the embedded index."},
        {"id": "q3", "text": "Espresso needs finely ground coffee and nine bars."},
        {"id": "q-unjudged", "text": "nothing"},
    ]), encoding="utf-8")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 tides.txt 1\nq2 0 faq-2 1\nq3 0 sub/espresso.md 2\n", encoding="utf-8")
    code, out, err = run(["eval", "--db", db, "--queries", queries, "--qrels", qrels, "--json", "--grid",
                          "--grid-step", "0.5"])
    assert code == 0, err
    assert "1 queries without judgements" in err
    result = json.loads(out)
    assert result["queries"] == 3
    names = [r["setting"] for r in result["results"]]
    assert names[:3] == ["dense", "sparse", "colbert"] and "hybrid rrf" in names and "hybrid dbsf" in names
    by_name = {r["setting"]: r for r in result["results"]}
    assert by_name["dense"]["ndcg@10"] == pytest.approx(1.0)  # each query is its document's exact text
    for r in result["results"]:
        assert 0.0 <= r["ndcg@10"] <= 1.0 and r["recall@100"] == pytest.approx(1.0)
    assert len(result["grid"]) == 6  # step 0.5: (1,0,0) (0.5,0.5,0) ...
    assert result["best_weights"] == result["grid"][0]["weights"]
    assert result["grid"][0]["ndcg@10"] == max(g["ndcg@10"] for g in result["grid"])

    code, out, err = run(["eval", "--db", db, "--queries", queries, "--qrels", qrels])
    assert code == 0, err
    assert "nDCG@10" in out and "hybrid weighted 0.4,0.2,0.4" in out


# -------------------------------------------------------------------------------------------- info
def test_info_lists_model_store_and_counts(indexed, tiny_model_dir):
    _, db, _ = indexed
    with opened(db) as store:
        n = count_documents(store)
    code, out, err = run(["info", "--db", db])
    assert code == 0, err
    assert str(Path(tiny_model_dir).resolve()) in out and "local directory" in out
    assert "device:" in out and "cpu" in out and "float32" in out
    assert "qdrant-edge" in out and f"docs: {n} chunks (default)" in out
    code, out, _ = run(["info", "--db", db, "--json"])
    info = json.loads(out)
    assert info["store"] == "qdrant-edge" and info["collections"][0] == {
        "name": "docs", "count": n, "model": str(Path(tiny_model_dir).resolve()), "chunk_tokens": 40,
        "chunk_overlap": 8, "text_field": "text"}


def test_info_without_an_index(tmp_path):
    code, out, _ = run(["info", "--db", tmp_path / "none"])
    assert code == 0 and "none in" in out and "BAAI/bge-m3" in out
    assert not (tmp_path / "none").exists()


# ------------------------------------------------------------------------------------------ errors
def _one_error_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("m3"), err
    for needle in needles:
        assert needle in lines[0], err


@pytest.mark.parametrize("case", ["missing_path", "empty_folder", "only_unsupported", "only_unreadable", "no_model",
                                  "bad_server",
                                  "bad_milvus_server", "edge_with_url", "bad_overlap"])
def test_index_errors_are_one_line_and_store_nothing(case, tmp_path, tiny_model_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    db = tmp_path / "db"
    model = ["--model", tiny_model_dir]
    argv, needle = {
        "missing_path": (["index", tmp_path / "nope", *model], "no such file or directory"),
        "empty_folder": (["index", folder, *model], "no indexable files"),
        "only_unsupported": (["index", folder, *model], "no indexable files"),
        "only_unreadable": (["index", folder, *model], "no text to index in the given files (1 could not be read"),
        "no_model": (["index", folder, "--model", tmp_path / "no-model"], "no such directory"),
        "bad_server": (["index", folder, *model, "--store", "qdrant", "--url", "http://127.0.0.1:9"],
                       "cannot reach the Qdrant server"),
        "bad_milvus_server": (["index", folder, *model, "--store", "milvus", "--url", "http://127.0.0.1:9"],
                              "cannot reach the Milvus server"),
        "edge_with_url": (["index", folder, *model, "--store", "qdrant-edge", "--url", "http://127.0.0.1:9"],
                          "--url needs --store qdrant or --store milvus"),
        "bad_overlap": (["index", folder, *model, "--chunk-tokens", "40", "--chunk-overlap", "30"],
                        "--chunk-overlap must be at most"),
    }[case]
    if case == "only_unsupported":
        (folder / "a.png").write_bytes(b"\x89PNG\r\n")
    elif case == "only_unreadable":
        (folder / "a.pdf").write_bytes(b"%PDF")
    elif case in ("no_model", "bad_server", "bad_milvus_server", "edge_with_url", "bad_overlap"):
        (folder / "a.txt").write_text("some text", encoding="utf-8")
    code, out, err = run([*argv, "--db", db])
    assert code == 1
    _one_error_line(err, needle)
    assert not db.exists()


def test_search_errors(tmp_path, indexed, tiny_model_dir):
    _, db, _ = indexed
    code, _, err = run(["search", "x", "--db", tmp_path / "none"])
    assert code == 1
    _one_error_line(err, "no index in")
    code, _, err = run(["search", "x", "--db", db, "--weights", "1,2"])
    assert code == 2
    _one_error_line(err, "--weights")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(["search", "x", "--db", db, "--collection", "other"])
    assert code == 1
    _one_error_line(err, "'other'", "empty or missing")
    code, _, err = run(["search", "x", "--db", db, "--store", "milvus"])
    assert code == 1
    _one_error_line(err, "describes a qdrant-edge index", "use another --db")
    other_model = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other_model)
    code, _, err = run(["search", "x", "--db", db, "--model", other_model])
    assert code == 1
    _one_error_line(err, "was indexed with model")


def test_eval_input_errors(tmp_path, indexed):
    _, db, _ = indexed
    queries = tmp_path / "q.tsv"
    queries.write_text("q1\thello\n", encoding="utf-8")
    bad = tmp_path / "qrels.txt"
    bad.write_text("q1 0 doc 1\nq2\n", encoding="utf-8")
    code, _, err = run(["eval", "--db", db, "--queries", queries, "--qrels", bad])
    assert code == 1
    _one_error_line(err, "qrels.txt:2", "TREC")
    other = tmp_path / "other.txt"
    other.write_text("q9 0 doc 1\n", encoding="utf-8")
    code, _, err = run(["eval", "--db", db, "--queries", queries, "--qrels", other])
    assert code == 1
    _one_error_line(err, "none of the 1 query ids")
