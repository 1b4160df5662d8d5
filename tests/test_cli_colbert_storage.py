"""``m3 index --colbert-storage / --colbert-pool-factor``: recorded with the index, applied, validated."""

from __future__ import annotations

import contextlib
import io
import json

from m3_integrations.cli import main
from m3_integrations.qdrant import QdrantEdgeStore


def run(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_index_records_the_colbert_settings_and_search_needs_no_flag(tmp_path, tiny_model_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.txt").write_text("Tides follow the moon and the sun around the earth every day.", encoding="utf-8")
    (docs / "bread.txt").write_text("Sourdough bread needs a starter, flour, water and patience.", encoding="utf-8")
    db = tmp_path / "idx"
    code, _, err = run(["index", docs, "--db", db, "--model", tiny_model_dir, "--colbert-storage", "8bit",
                        "--colbert-pool-factor", "2", "--no-progress"])
    assert code == 0, err
    store = QdrantEdgeStore(db / "qdrant-edge")
    try:
        [name] = store.list_collections()
        info = store.describe(name)
        assert info.vectors["colbert"].datatype == "turbo8"
        assert info.recorded == {"colbert_storage": "8bit", "colbert_pool_factor": 2}
    finally:
        store.close()
    code, out, err = run(["search", "moon tides", "--db", db, "--json", "-k", "1"])
    assert code == 0, err
    assert "Tides" in json.loads(out)[0]["text"]
    # a re-index asking for other settings is refused with what differs; the index is unchanged
    (docs / "new.txt").write_text("Chess openings control the centre.", encoding="utf-8")
    code, _, err = run(["index", docs, "--db", db, "--colbert-storage", "float16", "--no-progress"])
    assert code != 0 and "stored as '8bit'" in err and "colbert_storage='float16'" in err
