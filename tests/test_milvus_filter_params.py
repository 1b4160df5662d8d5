"""Milvus filters as templates + ``filter_params``: rendered by one literal encoder on milvus-lite (which rejects
templates), sent as they are to servers that take them (checked on the requests built; no server runs here)."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("milvus_lite")

from _milvus_layouts import make_tutorial_collection
from pymilvus import AnnSearchRequest, MilvusClient  # noqa: E402
from pymilvus.exceptions import MilvusException  # noqa: E402

from m3_integrations.milvus import (  # noqa: E402
    AllOf,
    Condition,
    count_documents,
    delete_by_filter,
    delete_documents,
    get_documents,
    hybrid_search,
    to_expr,
    upsert_documents,
)
from m3_integrations.milvus._filters import Filter, compile_filter, literal, quote  # noqa: E402
from m3_integrations.milvus._schema import state  # noqa: E402

TRICKY = [
    'double "quoted"', "single 'quoted'", "back\\slash", "trailing backslash\\", '\\"escaped quote\\"',
    "new\nline", "tab\there", "carriage\rreturn", "control \x01 and \x7f", "unicode é ü ß 日本語 עברית",
    "emoji 😀 and a zero\u200dwidth joiner", "combining e\u0301", "line\u2028separator", "{placeholder}",
    "braces {x} and {{y}}", "",
]


@pytest.fixture(scope="module")
def lite(tmp_path_factory, encoder):
    client = MilvusClient(str(tmp_path_factory.mktemp("filters") / "f.db"))
    docs = [{"id": f"d{i}", "text": f"document {i}: {value or 'empty'}", "metadata": {"v": value, "i": i,
                                                                                      "even": i % 2 == 0}}
            for i, value in enumerate(TRICKY)]
    upsert_documents(client, docs, "f", encoder)
    yield client
    client.close()


def test_milvus_lite_rejects_templates(lite):
    """Why milvus-lite gets rendered literals: its parser stops at the placeholder (3.2.2)."""
    with pytest.raises(MilvusException, match="unexpected character '{'"):
        lite.query("f", filter='metadata["i"] == {i}', filter_params={"i": 1}, output_fields=["doc_id"])


@pytest.mark.parametrize("i", range(len(TRICKY)))
def test_literal_encoder_round_trips_every_value_on_milvus_lite(lite, i):
    value = TRICKY[i]
    by_neutral = get_documents(lite, "f", query_filter=Condition("v", "eq", value))
    by_template = get_documents(lite, "f", query_filter='metadata["v"] == {v}', filter_params={"v": value})
    by_literal = get_documents(lite, "f", query_filter=f'metadata["v"] == {quote(value)}')
    assert [d.id for d in by_neutral] == [d.id for d in by_template] == [d.id for d in by_literal] == [f"d{i}"]
    listed = get_documents(lite, "f", query_filter="doc_id in {ids} and metadata[\"v\"] != {v}",
                           filter_params={"ids": [f"d{i}", "d0", "d1"], "v": value})
    assert f"d{i}" not in {d.id for d in listed} and listed


def test_user_templates_through_search_count_get_and_delete(lite, encoder, tmp_path):
    hits = hybrid_search(lite, "document", "f", encoder, limit=20, query_filter='metadata["i"] >= {low} and '
                         'metadata["even"] == {even}', filter_params={"low": 10, "even": True})
    assert sorted(h.id for h in hits) == sorted(f"d{i}" for i in range(10, len(TRICKY), 2))
    assert count_documents(lite, "f", query_filter='metadata["i"] < {n}', filter_params={"n": 3}) == 3
    assert [d.id for d in get_documents(lite, "f", ids=["d3", "d1"], query_filter='metadata["even"] == {e}',
                                        filter_params={"e": False})] == ["d3", "d1"]
    # a neutral filter mixed with the caller's own template: their names are kept, the package's avoid them
    mixed = AllOf((Condition("even", "eq", True), 'metadata["i"] < {m3_0}'))
    assert {d.id for d in get_documents(lite, "f", query_filter=mixed, filter_params={"m3_0": 5})} == \
        {"d0", "d2", "d4"}
    # delete on a copy (the module's collection stays whole)
    other = MilvusClient(str(tmp_path / "d.db"))
    try:
        upsert_documents(other, [{"id": "a", "text": "a", "metadata": {"v": 'x"y'}},
                                 {"id": "b", "text": "b", "metadata": {"v": "z"}}], "d", encoder)
        delete_by_filter(other, 'metadata["v"] == {v}', "d", filter_params={"v": 'x"y'})
        assert [d.id for d in get_documents(other, "d")] == ["b"]
        delete_documents(other, ["b", 'no"such'], "d")
        assert count_documents(other, "d") == 0
    finally:
        other.close()


def test_bad_templates_are_refused_before_any_call(lite, encoder):
    with pytest.raises(ValueError, match=r"uses \{lang\}, which filter_params does not give"):
        hybrid_search(lite, "x", "f", encoder, query_filter='metadata["v"] == {lang}')
    with pytest.raises(ValueError, match=r"filter_params gives \['extra'\], which the filter .* does not use"):
        get_documents(lite, "f", query_filter='metadata["v"] == {v}', filter_params={"v": "a", "extra": 1})
    with pytest.raises(ValueError, match="filter_params were given without a filter"):
        count_documents(lite, "f", filter_params={"v": 1})
    with pytest.raises(TypeError, match="must be a str, bool, int, float or a list of them"):
        get_documents(lite, "f", query_filter='metadata["v"] == {v}', filter_params={"v": {"a": 1}})
    with pytest.raises(ValueError, match="must be finite"):
        get_documents(lite, "f", query_filter='metadata["v"] == {v}', filter_params={"v": float("nan")})
    with pytest.raises(ValueError, match="delete_by_filter needs a filter"):
        delete_by_filter(lite, None, "f")
    assert count_documents(lite, "f") == len(TRICKY)


def test_literal_encoder_and_rendering():
    assert literal('a"b\\c\n\t\r\x01é', key="k") == '"a\\"b\\\\c\\n\\t\\r\x01é"'
    assert literal([1, -2.5, True, "x", [1e-05]], key="k") == '[1, -2.5, true, "x", [1e-05]]'
    flt = Filter('text == "{kept} \\" {kept}" and n in {ns} and s == {s}', {"ns": [1, 2], "s": "{kept}"})
    assert flt.rendered() == 'text == "{kept} \\" {kept}" and n in [1, 2] and s == "{kept}"'
    assert to_expr(Condition("a.b", "in", ["x", 'y"'])) == '(metadata["a"]["b"] == "x" or metadata["a"]["b"] == "y\\"")'
    with pytest.raises(TypeError, match="filter_params must be a dict"):
        compile_filter("a == {x}", [("x", 1)])


class ServerLike:
    """A real milvus-lite client presented as a Milvus server of ``version`` (mocked: no Milvus server can run
    here). It records the filter of every request the package builds, then runs it on milvus-lite with the
    placeholders replaced by JSON literals (an independent renderer, exact for the ASCII values used here)."""

    def __init__(self, inner, version) -> None:
        self.inner, self.version, self.sent = inner, version, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_server_version(self, **kwargs):
        return self.version

    @staticmethod
    def _render(template, params):
        return re.sub(r"\{(\w+)\}", lambda m: json.dumps(params[m.group(1)]), template) if params else template

    def _forward(self, method, args, kwargs):
        if "filter" in kwargs:
            self.sent.append((method, kwargs["filter"], kwargs.get("filter_params")))
            kwargs = {**kwargs, "filter": self._render(kwargs["filter"], kwargs.pop("filter_params", None))}
        return getattr(self.inner, method)(*args, **kwargs)

    def search(self, *args, **kwargs):
        return self._forward("search", args, kwargs)

    def query(self, *args, **kwargs):
        return self._forward("query", args, kwargs)

    def delete(self, *args, **kwargs):
        return self._forward("delete", args, kwargs)

    def hybrid_search(self, name, reqs, ranker, **kwargs):
        rendered = []
        for r in reqs:
            self.sent.append(("hybrid_search", r.expr, r.expr_params))
            rendered.append(AnnSearchRequest(r.data, r.anns_field, r.param, r.limit,
                                             expr=self._render(r.expr, r.expr_params) if r.expr else None))
        return self.inner.hybrid_search(name, rendered, ranker, **kwargs)


def _as_server(client, version):
    server = ServerLike(client, version)
    state(server).caps = None  # detected from get_server_version, as for a real server
    return server


def test_server_gets_templates_and_filter_params(lite, encoder):
    server = _as_server(lite, "v2.5.4")
    hits = hybrid_search(server, "document", "f", encoder, limit=5,
                         query_filter=Condition("v", "eq", 'double "quoted"'))
    assert [h.id for h in hits] == ["d0"]
    searches = [s for s in server.sent if s[0] in ("search", "hybrid_search") and s[1]]
    assert searches and all(s[1] == 'metadata["v"] == {m3_0}' and s[2] == {"m3_0": 'double "quoted"'}
                            for s in searches)
    server.sent.clear()
    docs = get_documents(server, "f", ids=["d2", "d4"], query_filter='metadata["i"] > {i}', filter_params={"i": 2})
    assert [d.id for d in docs] == ["d4"]
    assert ("query", '(metadata["i"] > {i}) and (doc_id in {m3_1})', {"i": 2, "m3_1": ["d2", "d4"]}) in server.sent
    assert state(server).caps.filter_templates and not state(lite).caps.filter_templates


def test_older_server_gets_one_literal(lite, encoder):
    server = _as_server(lite, "v2.4.9")
    assert count_documents(server, "f", query_filter=Condition("v", "eq", "tab\there")) == 1
    assert ("query", 'metadata["v"] == "tab\\there"', None) in server.sent


def test_writes_into_a_collection_made_elsewhere_look_up_texts_by_parameter(tmp_path, encoder):

    from m3_integrations.milvus import MilvusFields

    client = MilvusClient(str(tmp_path / "w.db"))
    try:
        make_tutorial_collection(client, "demo", encoder.dim)
        server = _as_server(client, "v2.6.0")
        texts = ['a "quoted" text', "plain text"]
        for _ in range(2):
            upsert_documents(server, texts, "demo", encoder, fields=MilvusFields())
        assert ("query", "text in {m3_0}", {"m3_0": texts}) in server.sent
        assert sorted(r["text"] for r in client.query("demo", filter="", output_fields=["text"], limit=10)) == \
            sorted(texts)
    finally:
        client.close()
