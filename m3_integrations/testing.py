"""Build BGE-M3-shaped models offline, with random weights, for tests, examples and benchmarks.

The directory has the exact BGE-M3 layout: an XLM-R ``config.json``, ``model.safetensors``, a
SentencePiece tokenizer (``sentencepiece.bpe.model`` plus ``tokenizer.json`` and friends) with
XLM-R's special ids (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>`` last),
``sparse_linear.pt`` and ``colbert_linear.pt``. Nothing is downloaded.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import torch

_CORPUS = """\
BGE-M3 gives dense, sparse and multi-vector representations of a text from one forward pass.
Hybrid retrieval combines lexical matching with semantic similarity for better recall.
Vector databases such as Qdrant and Milvus store dense vectors, sparse vectors and multivectors.
The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon.
Machine learning models encode documents into embeddings that capture their meaning.
Le renard brun rapide saute par-dessus le chien paresseux près de la rivière.
La recherche hybride combine la correspondance lexicale et la similarité sémantique.
Der schnelle braune Fuchs springt über den faulen Hund am Ufer des Flusses.
Die hybride Suche verbindet lexikalische Treffer mit semantischer Ähnlichkeit.
El rápido zorro marrón salta sobre el perro perezoso junto al río.
La búsqueda híbrida combina coincidencias léxicas y similitud semántica.
Быстрая коричневая лиса прыгает через ленивую собаку у реки.
Гибридный поиск сочетает лексическое совпадение и семантическое сходство.
敏捷的棕色狐狸跳过了河边那只懒惰的狗。混合检索结合了词汇匹配和语义相似度。
素早い茶色の狐が川辺で怠け者の犬を飛び越える。ハイブリッド検索は語彙と意味を組み合わせる。
빠른 갈색 여우가 강가에서 게으른 개를 뛰어넘는다. 하이브리드 검색은 어휘와 의미를 결합한다.
الثعلب البني السريع يقفز فوق الكلب الكسول بالقرب من النهر.
तेज़ भूरी लोमड़ी नदी के पास आलसी कुत्ते के ऊपर कूदती है।
Numbers like 2024, 3.14 and 1,000,000 appear in tables, code and logs: x = f(y) + 42;
"""


def _train_sentencepiece(vocab_size: int) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    lines = _CORPUS.splitlines() * 4
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False,
        num_threads=1, minloglevel=2, seed_sentencepiece_size=100000, shuffle_input_sentence=False,
    )
    return model.getvalue()


def _build_tokenizer(spm_bytes: bytes, directory: Path):
    """An XLM-R tokenizer over a SentencePiece model, with XLM-R's fairseq id layout."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    # XLM-R: <s>=0 <pad>=1 </s>=2 <unk>=3, then the SentencePiece pieces (shifted by one), <mask> last.
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(sp.id_to_piece(i), sp.get_score(i)) for i in range(3, sp.get_piece_size())]
    vocab.append(("<mask>", 0.0))
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    tokenizer.model_max_length = 8192
    tokenizer.save_pretrained(str(directory))
    (directory / "sentencepiece.bpe.model").write_bytes(spm_bytes)
    return tokenizer


def build_random_model(
    directory: str | Path,
    *,
    hidden_size: int = 1024,
    num_layers: int = 24,
    num_heads: int = 16,
    intermediate_size: int = 4096,
    vocab_size: int | None = None,
    max_position_embeddings: int = 8194,
    init_std: float = 0.02,
    tokenizer_vocab: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a random BGE-M3-layout model to ``directory`` and return its path.

    The defaults are the full BGE-M3 architecture (for benchmarks). ``vocab_size`` defaults to the
    tokenizer's size; pass 250002 for BGE-M3's embedding table.
    """
    from transformers import XLMRobertaConfig, XLMRobertaModel

    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    tokenizer = _build_tokenizer(_train_sentencepiece(tokenizer_vocab), directory)
    config = XLMRobertaConfig(
        vocab_size=vocab_size or len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, layer_norm_eps=1e-5, initializer_range=init_std, hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = XLMRobertaModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # a std of ~0.2 keeps a tiny random model's outputs input dependent
        for name, param in model.named_parameters():
            if "LayerNorm" in name:
                continue
            param.normal_(0.0, init_std)
    model.save_pretrained(str(directory), safe_serialization=True)
    _add_pooler_weights(directory / "model.safetensors", hidden_size, seed)
    sparse = torch.nn.Linear(hidden_size, 1)
    colbert = torch.nn.Linear(hidden_size, hidden_size)
    with torch.no_grad():
        sparse.weight.normal_(0.0, 1.0 / hidden_size**0.5)
        sparse.bias.fill_(0.05)
        colbert.weight.normal_(0.0, 1.0 / hidden_size**0.5)
    torch.save(sparse.state_dict(), directory / "sparse_linear.pt")
    torch.save(colbert.state_dict(), directory / "colbert_linear.pt")
    return directory


def _add_pooler_weights(weights_file: Path, hidden_size: int, seed: int) -> None:
    """The real checkpoint carries XLM-R's pooler, which BGE-M3 does not use; so does the random one."""
    from safetensors.torch import load_file, save_file

    weights = load_file(weights_file)
    generator = torch.Generator().manual_seed(seed + 1)
    weights["pooler.dense.weight"] = torch.randn(hidden_size, hidden_size, generator=generator) * 0.02
    weights["pooler.dense.bias"] = torch.zeros(hidden_size)
    save_file(weights, weights_file, metadata={"format": "pt"})


def build_tiny_model(directory: str | Path, *, seed: int = 0) -> Path:
    """A tiny (hidden 32, 2 layers) random BGE-M3-layout model whose outputs depend on the input."""
    return build_random_model(
        directory, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, init_std=0.2, seed=seed,
    )
