"""LangChain's own standard test suites (langchain-tests) on M3Embeddings and M3HybridRetriever."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from m3_integrations.langchain import M3Embeddings, M3HybridRetriever, add_documents


class TestM3EmbeddingsUnit(EmbeddingsUnitTests):
    """Construction from a local model directory (loading is lazy, so these are instant)."""

    @pytest.fixture(autouse=True)
    def _model_dir(self, tiny_model_dir) -> None:
        self.model_dir = str(tiny_model_dir)

    @property
    def embeddings_class(self) -> type[M3Embeddings]:
        return M3Embeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name": self.model_dir, "device": "cpu"}


class TestM3EmbeddingsIntegration(EmbeddingsIntegrationTests):
    """Real embeddings from the tiny model."""

    @pytest.fixture(autouse=True)
    def _encoder(self, encoder) -> None:
        self.encoder = encoder

    @property
    def embeddings_class(self) -> type[M3Embeddings]:
        return M3Embeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"encoder": self.encoder}


CORPUS = [
    Document(page_content="BGE-M3 gives dense, sparse and multi-vector representations.", id="m3",
             metadata={"topic": "models"}),
    Document(page_content="Hybrid retrieval combines lexical matching with semantic similarity.", id="hybrid",
             metadata={"topic": "search"}),
    Document(page_content="Qdrant and Milvus store dense vectors, sparse vectors and multivectors.", id="dbs",
             metadata={"topic": "databases"}),
    Document(page_content="The quick brown fox jumps over the lazy dog near the river bank.", id="fox",
             metadata={"topic": "animals"}),
    Document(page_content="Le renard brun rapide saute par-dessus le chien paresseux.", id="renard",
             metadata={"topic": "animals"}),
]


class TestM3HybridRetrieverQdrant(RetrieversIntegrationTests):
    """The retriever over a local-mode QdrantClient holding a few documents."""

    @pytest.fixture(autouse=True, scope="class")
    def _store(self, request, encoder):
        from qdrant_client import QdrantClient

        client = QdrantClient(":memory:")
        add_documents(client, CORPUS, collection_name="standard", encoder=encoder)
        request.cls.client = client
        request.cls.encoder = encoder
        yield
        client.close()

    @property
    def retriever_constructor(self) -> type[M3HybridRetriever]:
        return M3HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"client": self.client, "collection_name": "standard", "encoder": self.encoder}

    @property
    def retriever_query_example(self) -> str:
        return "hybrid search with dense and sparse vectors"
