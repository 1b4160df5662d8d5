"""`m3 encode`: the three outputs of a few texts, from a local model directory."""

from __future__ import annotations

import json

import numpy as np

from m3_integrations.cli import main


def test_encode_prints_the_three_outputs(tiny_model_dir, encoder, capsys):
    assert main(["encode", "hybrid retrieval in Qdrant", "", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert f"dense   [{encoder.dim}]" in out and "sparse  0 tokens" in out
    n_tokens = encoder.count_tokens(["hybrid retrieval in Qdrant"])[0]
    assert f"colbert [{n_tokens - 1} x {encoder.dim}]" in out


def test_encode_json_matches_the_encoder(tiny_model_dir, encoder, capsys):
    assert main(["encode", "Le renard brun", "--model", str(tiny_model_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = encoder.encode(["Le renard brun"])
    assert np.abs(np.array(rows[0]["dense"]) - expected.dense[0]).max() < 1e-5
    assert {int(k) for k in rows[0]["sparse_ids"]} == set(expected.sparse[0])
    assert np.array(rows[0]["colbert"]).shape == expected.colbert[0].shape


def test_encode_with_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["encode", "x", "--model", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such directory" in err
