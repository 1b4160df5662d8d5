"""The pieces under ``m3 index`` / ``m3 eval``: file discovery, readers, the chunker, eval file formats."""

from __future__ import annotations

import json

import pytest

from m3_integrations.cli._evaluation import read_qrels, read_queries, weight_grid
from m3_integrations.files import (
    InputError,
    Record,
    chunk_record,
    chunk_text,
    decode,
    discover,
    file_hash,
    load_chunks,
    read_records,
)
from m3_integrations.files.text import markdown_sections

WORDS = "alpha beta gamma hybrid retrieval vector database dense sparse colbert qdrant milvus".split()


@pytest.fixture(scope="module")
def tok(encoder):
    return encoder.tokenizer.backend_tokenizer


def _text(n: int) -> str:
    return "\n".join(" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + i % 9)) for i in range(n))


@pytest.mark.parametrize("size,overlap", [(16, 0), (24, 4), (64, 16), (512, 64)])
def test_chunks_are_exact_substrings_within_budget(tok, encoder, size, overlap):
    text = _text(60)
    pieces = chunk_text(text, tok, size, overlap)
    assert pieces == chunk_text(text, tok, size, overlap)  # deterministic
    assert all(len(encoder.tokenize(p)[0]) <= size + 1 for p in pieces)
    spans, position = [], 0
    for piece in pieces:  # in order, each an exact slice of the text, starting on a word
        start = text.find(piece, position)
        assert start >= 0 and (start == 0 or text[start - 1].isspace())
        spans.append((start, start + len(piece)))
        position = start + 1
    assert text.rstrip().endswith(pieces[-1])
    assert set(text.split()) <= set(" ".join(pieces).split())
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        assert s1 < s2 and e1 < e2
        shared = tok.encode(text[s2:e1], add_special_tokens=False).ids if s2 < e1 else []
        assert len(shared) >= overlap  # at least `overlap` tokens in common


def test_short_empty_and_unbroken_text(tok):
    assert chunk_text("", tok, 32, 4) == []
    assert chunk_text(" \n\t ", tok, 32, 4) == []
    assert chunk_text("  two words \n", tok, 32, 4) == ["two words"]
    long_word = "x" * 300  # one "word" longer than a chunk is cut between tokens
    pieces = chunk_text(long_word, tok, 16, 2)
    assert len(pieces) > 1 and all(set(p) == {"x"} for p in pieces)
    assert "".join(pieces).count("x") >= 300


def test_chunk_settings_are_checked(tok):
    with pytest.raises(ValueError, match="at least 8"):
        chunk_text("a b", tok, 4, 0)
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("a b", tok, 32, 20)


def test_discover_walks_folders_and_notes_skips(tmp_path):
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "b.PDF").write_text("x")
    (tmp_path / "noext").write_text("plain text without an extension")
    (tmp_path / "photo.JPG").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "blob").write_bytes(bytes(range(256)))
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jsonl").write_text("{}")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.txt").write_text("x")
    (tmp_path / ".env").write_text("x")
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "e.txt").write_text("x")
    files, skipped = discover([tmp_path, tmp_path / "a.md"], exclude=[tmp_path / "index"])
    assert [f.relative for f in files] == ["a.md", "b.PDF", "noext", "sub/c.jsonl"]
    assert sorted((p.name, reason) for p, reason in skipped) == [
        ("blob", "binary content"), ("photo.JPG", "binary file type '.jpg'"),
        ("sheet.xlsx", "unsupported document type '.xlsx' (save it as PDF, DOCX or PPTX)")]
    files, _ = discover([tmp_path], exclude=[tmp_path / "index"], hidden=True)
    assert {".env", ".git/d.txt"} <= {f.relative for f in files}
    with pytest.raises(InputError, match="no such file or directory"):
        discover([tmp_path / "missing"])


def test_gitignore_rules_apply_in_their_folder(tmp_path):
    (tmp_path / ".gitignore").write_text("*.log\n/top-only.txt\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".gitignore").write_text("secret/\n!keep.log\n", encoding="utf-8")
    for name in ("a.log", "top-only.txt", "sub/b.log", "sub/keep.log", "sub/top-only.txt", "sub/secret/x.txt",
                 "sub/ok.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text", encoding="utf-8")
    files, _ = discover([tmp_path])
    assert [f.relative for f in files] == ["sub/keep.log", "sub/ok.txt", "sub/top-only.txt"]
    files, _ = discover([tmp_path], gitignore=False, include_globs=["*.log"], exclude_globs=["sub/b.log"])
    assert [f.relative for f in files] == ["a.log", "sub/keep.log"]


def test_readers(tmp_path):
    (tmp_path / "r.jsonl").write_text(
        json.dumps({"_id": 7, "text": "first", "n": 1, "source": "x", "nested": {"a": 1}}) + "\n\n"
        + json.dumps({"text": "second"}) + "\n" + json.dumps({"title": "no text"}) + "\n", encoding="utf-8")
    (tmp_path / "r.json").write_text(json.dumps(["plain", {"id": "j", "text": "obj"}]), encoding="utf-8")
    (tmp_path / "r.csv").write_text("id,text\nc1,hello\nc2,\n", encoding="utf-8")
    (tmp_path / "r.tsv").write_text("id\ttext\tlang\nt1\thello, tabs\tfr\n", encoding="utf-8")
    (tmp_path / "nocol.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    files, _ = discover([tmp_path])
    by = {f.path.name: f for f in files}
    records, notes = read_records(by["r.jsonl"])
    assert [(r.text, r.doc_id, r.record) for r in records] == [("first", "7", 1), ("second", "r.jsonl:3", 3)]
    assert records[0].metadata == {"n": 1, "user_source": "x"}  # reserved key renamed, nested dropped
    assert notes == ["1 record(s) without a string 'text' field skipped"]
    records, _ = read_records(by["r.json"])
    assert [(r.text, r.doc_id) for r in records] == [("plain", "r.json:1"), ("obj", "j")]
    records, _ = read_records(by["r.csv"])
    assert [(r.text, r.doc_id) for r in records] == [("hello", "c1")]
    records, _ = read_records(by["r.tsv"])
    assert [(r.text, r.doc_id, r.metadata) for r in records] == [("hello, tabs", "t1", {"lang": "fr"})]
    with pytest.raises(InputError, match="no 'text' column"):
        read_records(by["nocol.csv"])
    with pytest.raises(InputError, match="bad.jsonl:2: invalid JSON"):
        read_records(by["bad.jsonl"])
    records, _ = read_records(by["latin.txt"])
    assert records[0].text == "café"
    assert file_hash(by["r.csv"].path, "a") != file_hash(by["r.csv"].path, "b")


def test_eval_file_formats(tmp_path):
    (tmp_path / "q.jsonl").write_text('{"_id": 1, "text": "one"}\n{"qid": "b", "query": "two"}\n')
    (tmp_path / "q.tsv").write_text("query_id\ttext\n1\tone\nb\ttwo\twith tab\n")
    assert read_queries(tmp_path / "q.jsonl") == {"1": "one", "b": "two"}
    assert read_queries(tmp_path / "q.tsv") == {"1": "one", "b": "two\twith tab"}
    (tmp_path / "trec.txt").write_text("1 0 d1 1\n1 Q0 d2 0\nb 0 d3 2\n")
    (tmp_path / "beir.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\nb\td3\t2\n")
    (tmp_path / "qrels.jsonl").write_text('{"query_id": "1", "doc_id": "d1", "relevance": 1}\n'
                                          '{"qid": "b", "corpus_id": "d3", "score": 2}\n')
    expected = {"1": {"d1": 1}, "b": {"d3": 2}}
    for name in ("trec.txt", "beir.tsv", "qrels.jsonl"):
        assert read_qrels(tmp_path / name) == expected
    (tmp_path / "bad.jsonl").write_text('{"text": "no id"}\n')
    with pytest.raises(InputError, match="bad.jsonl:1: no query id"):
        read_queries(tmp_path / "bad.jsonl")
    with pytest.raises(InputError, match="no such file"):
        read_qrels(tmp_path / "missing.txt")


def test_weight_grid():
    grid = weight_grid(0.2)
    assert len(grid) == 21 and (0.4, 0.2, 0.4) in grid and (1.0, 0.0, 0.0) in grid
    assert all(abs(sum(w) - 1) < 1e-9 for w in grid)
    with pytest.raises(InputError):
        weight_grid(0.3)


ACCENTED = {
    "fr": "La crème brûlée est très appréciée à Genève. Où est le garçon naïf? Déjà l'été, à la fenêtre.",
    "de": "Größere Übungen für Bäcker: Müller aß süße Äpfel, während die Straße überflutet war.",
    "es": "El niño pequeño comió jalapeños en la montaña. ¿Dónde está la canción? ¡Qué años más difíciles!",
    "short": "crème",
}


@pytest.mark.parametrize("lang", sorted(ACCENTED))
@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_accented_text_decodes_in_any_common_encoding(lang, encoding):
    text = ACCENTED[lang]
    assert decode(text.encode(encoding), "x.txt") == text


def test_other_code_pages_still_detected():
    czech = "Příliš žluťoučký kůň úpěl ďábelské ódy. Čeština je krásný jazyk, který se používá v České republice."
    assert decode(czech.encode("cp1250"), "cz.txt") == czech
    russian = "Съешь же ещё этих мягких французских булок, да выпей чаю. Русский язык очень красив и богат."
    assert decode(russian.encode("cp1251"), "ru.txt") == russian
    with pytest.raises(InputError, match="not text"):
        decode(bytes(range(256)) * 4, "blob")
    assert decode("plain ASCII in UTF-16".encode("utf-16-le"), "a.txt") == "plain ASCII in UTF-16"


def test_markdown_sections_and_line_ranges(tok):
    text = "Intro line.\n\n# Title\n\nFirst part.\n\n```\n# not a heading\n```\n\n## Sub\n\nSecond part.\n"
    assert [(text[s.start:s.end].split("\n")[0], s.location) for s in markdown_sections(text)] == [
        ("Intro line.", {}), ("# Title", {"heading": "Title"}), ("## Sub", {"heading": "Title > Sub"})]
    record = Record(text=text, doc_id="d", sections=markdown_sections(text))
    chunks = chunk_record(record, tok, 512, 0)
    assert [(c.location.get("heading"), c.location["line_start"], c.location["line_end"]) for c in chunks] == [
        (None, 1, 1), ("Title", 3, 9), ("Title > Sub", 11, 13)]
    assert all(c.text == text[c.start:c.end] for c in chunks)


def test_chunks_prefer_paragraph_then_sentence_boundaries(tok):
    paragraph = " ".join(f"Sentence {i} about tides and the moon." for i in range(6))
    text = "\n\n".join([paragraph] * 4)
    size = len(tok.encode(paragraph + "\n\n" + paragraph, add_special_tokens=False).ids) + 8
    pieces = chunk_text(text, tok, size, 0)
    assert pieces and all(p == paragraph or p == paragraph + "\n\n" + paragraph for p in pieces)
    one = len(tok.encode(paragraph, add_special_tokens=False).ids)
    pieces = chunk_text(paragraph, tok, one // 2 + 6, 0)  # smaller than a paragraph: whole sentences
    assert len(pieces) > 1 and all(p.endswith(".") for p in pieces)
    assert " ".join(pieces) == paragraph


def test_load_chunks_gives_loaders_the_ids_and_metadata_m3_index_stores(tmp_path, tok):
    (tmp_path / "guide.md").write_text("# Setup\n\nInstall it.\n\n## Linux\n\nUse the package manager.\n",
                                       encoding="utf-8")
    (tmp_path / "faq.jsonl").write_text(json.dumps({"id": "q1", "text": "No server needed.", "topic": "cli"}) + "\n",
                                        encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    errors: list[tuple[str, str]] = []
    chunks = list(load_chunks([tmp_path], tok, 64, 8, errors=errors))
    source = (tmp_path / "guide.md").as_posix()
    assert [(c.id, c.text, c.metadata.get("heading")) for c in chunks if c.metadata["source"] == source] == [
        (f"{source}#0", "# Setup\n\nInstall it.", "Setup"),
        (f"{source}#1", "## Linux\n\nUse the package manager.", "Setup > Linux")]
    faq = next(c for c in chunks if c.metadata["doc_id"] == "q1")
    assert faq.id == f"{(tmp_path / 'faq.jsonl').as_posix()}:1#0"
    assert faq.metadata == {"topic": "cli", "source": (tmp_path / "faq.jsonl").as_posix(), "doc_id": "q1",
                            "chunk": 0, "file_chunks": 1, "record": 1}
    assert all(c.tokens > 0 for c in chunks)
    assert len(errors) == 1 and errors[0][0].endswith("/broken.pdf") and "cannot read PDF" in errors[0][1]
