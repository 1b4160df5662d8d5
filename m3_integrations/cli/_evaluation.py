"""``m3 eval``: read queries and relevance judgements, and score each retrieval mode with ranx.

Formats (see docs/cli.md):

* queries: ``.jsonl`` with one ``{"id": ..., "text": ...}`` per line (``_id``/``qid``/``query_id`` and
  ``query`` are accepted too), or a ``.tsv``: ``query_id<TAB>text`` per line (a header line is skipped).
* qrels: TREC (``query_id 0 doc_id relevance``, whitespace separated), BEIR-style TSV
  (``query_id<TAB>doc_id<TAB>relevance``, a header line is skipped), or ``.jsonl`` with
  ``{"query_id": ..., "doc_id": ..., "relevance": ...}`` per line.

Document ids are the ``doc_id`` that ``m3 index`` stores: the ``id``/``_id`` field of a .jsonl/.json/
.csv record, or the file path relative to the folder given to ``m3 index`` for .txt/.md files.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import InputError

QUERY_ID_KEYS = ("id", "_id", "qid", "query_id", "query-id")
QUERY_TEXT_KEYS = ("text", "query", "question")
QREL_QID_KEYS = ("query_id", "query-id", "qid", "id")
QREL_DOC_KEYS = ("doc_id", "corpus_id", "corpus-id", "docid", "doc")
QREL_REL_KEYS = ("relevance", "score", "rel", "label")
METRICS = ("ndcg@10", "recall@100")


@dataclass(frozen=True)
class Setting:
    """One retrieval setting to evaluate."""

    name: str
    mode: str
    fusion: str = "weighted"
    weights: tuple[float, float, float] = (0.4, 0.2, 0.4)


def _pick(item: dict[str, Any], keys: Sequence[str], what: str, where: str) -> Any:
    for key in keys:
        if key in item and item[key] not in (None, ""):
            return item[key]
    raise InputError(f"{where}: no {what} field (looked for {', '.join(keys)})")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise InputError(f"no such file: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _json_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
    if not isinstance(item, dict):
        raise InputError(f"{path}:{number}: expected a JSON object")
    return item


def read_queries(path: str | Path) -> dict[str, str]:
    """``{query_id: text}`` from a .jsonl or .tsv file; raises ``InputError`` naming the bad line."""
    path = Path(path)
    queries: dict[str, str] = {}
    lines = _read_lines(path)
    jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson") or (lines and lines[0][1].lstrip().startswith("{"))
    for index, (number, line) in enumerate(lines):
        where = f"{path}:{number}"
        if jsonl:
            item = _json_line(path, number, line)
            qid, text = _pick(item, QUERY_ID_KEYS, "query id", where), _pick(item, QUERY_TEXT_KEYS, "text", where)
        else:
            parts = line.split("\t")
            if len(parts) < 2:
                raise InputError(f"{where}: expected 'query_id<TAB>text'")
            qid, text = parts[0].strip(), "\t".join(parts[1:]).strip()
            if index == 0 and qid.lower() in QUERY_ID_KEYS and text.lower() in QUERY_TEXT_KEYS:
                continue  # header
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: empty query text")
        queries[str(qid)] = text
    if not queries:
        raise InputError(f"{path}: no queries")
    return queries


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: relevance}}`` from TREC qrels, a BEIR-style TSV or .jsonl."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    lines = _read_lines(path)
    jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson") or (lines and lines[0][1].lstrip().startswith("{"))
    for index, (number, line) in enumerate(lines):
        where = f"{path}:{number}"
        if jsonl:
            item = _json_line(path, number, line)
            qid = _pick(item, QREL_QID_KEYS, "query id", where)
            doc = _pick(item, QREL_DOC_KEYS, "doc id", where)
            rel: Any = next((item[k] for k in QREL_REL_KEYS if k in item), 1)
        else:
            parts = line.split("\t") if "\t" in line else line.split()
            parts = [p.strip() for p in parts]
            if len(parts) == 4:
                qid, _, doc, rel = parts
            elif len(parts) == 3:
                qid, doc, rel = parts
            else:
                raise InputError(f"{where}: expected 'query_id 0 doc_id relevance' (TREC) "
                                 "or 'query_id<TAB>doc_id<TAB>relevance'")
        try:
            relevance = int(float(rel))
        except (TypeError, ValueError):
            if index == 0 and not jsonl:
                continue  # header line
            raise InputError(f"{where}: relevance {rel!r} is not a number") from None
        if relevance > 0:
            qrels.setdefault(str(qid), {})[str(doc)] = relevance
    if not qrels:
        raise InputError(f"{path}: no positive relevance judgements")
    return qrels


def default_settings(weights: tuple[float, float, float]) -> list[Setting]:
    """Each single mode, then the fusions of all three (weighted with ``weights``, RRF, DBSF)."""
    w = ",".join(f"{x:g}" for x in weights)
    return [
        Setting("dense", "dense"),
        Setting("sparse", "sparse"),
        Setting("colbert", "colbert"),
        Setting("dense+sparse weighted 1,0.3,0", "hybrid", "weighted", (1.0, 0.3, 0.0)),
        Setting(f"hybrid weighted {w}", "hybrid", "weighted", weights),
        Setting("hybrid rrf", "hybrid", "rrf", weights),
        Setting("hybrid dbsf", "hybrid", "dbsf", weights),
    ]


def weight_grid(step: float = 0.2) -> list[tuple[float, float, float]]:
    """All ``(dense, sparse, colbert)`` weights on a ``step`` grid that sum to 1 (single modes included)."""
    n = round(1 / step)
    if n < 1 or abs(n * step - 1) > 1e-9:
        raise InputError(f"--grid-step must divide 1 (e.g. 0.1, 0.2, 0.25), got {step}")
    return [(round(i / n, 4), round(j / n, 4), round((n - i - j) / n, 4))
            for i in range(n + 1) for j in range(n + 1 - i)]


def run_for(search: Callable[[int, Setting], list[Any]], query_ids: list[str], setting: Setting,
            doc_id_of: Callable[[Any], str]) -> dict[str, dict[str, float]]:
    """The ranx run of one setting: per query, hits collapsed to documents (best chunk wins)."""
    run: dict[str, dict[str, float]] = {}
    for i, qid in enumerate(query_ids):
        ranked: dict[str, float] = {}
        for rank, hit in enumerate(search(i, setting)):
            doc = doc_id_of(hit)
            if doc not in ranked:
                # keep the hit order even where a fusion gives equal scores
                ranked[doc] = float(hit.score) - rank * 1e-9
        run[qid] = ranked
    return run


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10 and recall@100 with ranx (queries without any hit score 0)."""
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    run = {qid: (docs if docs else {"__no_hit__": 0.0}) for qid, docs in run.items()}
    with warnings.catch_warnings():  # numba type-safety chatter from inside ranx
        warnings.simplefilter("ignore")
        scores = ranx_evaluate(Qrels.from_dict(qrels), Run.from_dict(run), list(METRICS), make_comparable=True)
    return {metric: float(scores[metric]) for metric in METRICS}
