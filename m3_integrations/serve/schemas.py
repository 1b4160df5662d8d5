"""Request bodies of the service (pydantic), with error messages that name the field and the problem."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

OUTPUTS = ("dense", "sparse", "colbert")


def _texts(field: str):
    """A before-validator: a string or a non-empty list of strings, as a list."""

    def check(value: Any) -> list[str]:
        if value is None:
            raise ValueError(f"{field} is null: send a string or a list of strings")
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise ValueError(f"{field} must be a string or a list of strings, got {_json_type(value)}")
        if not value:
            raise ValueError(f"{field} is empty: send at least one text")
        if all(isinstance(x, int) and not isinstance(x, bool) for x in value) or all(
                isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in value):
            raise ValueError(f"{field} holds token ids: this service takes text only (OpenAI clients: turn off "
                             "client-side tokenization, e.g. LangChain's check_embedding_ctx_length=False)")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"{field}[{i}] is {_json_type(item)}, expected a string")
        return value

    return BeforeValidator(check)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings``: OpenAI's embeddings request (dense vectors)."""

    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send fields this service has no use for

    input: Annotated[list[str], _texts("input")]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class EncodeRequest(_Body):
    """``POST /encode``: all three outputs of one forward pass.

    ``kind`` picks the truncation length (``query``: the query length, ``document``: the document
    length) unless ``max_length`` is given. ``encoding_format`` applies to dense vectors;
    ``colbert_format`` to ColBERT matrices (``base64``: little-endian ``colbert_dtype`` bytes with
    their shape; ``float``: nested lists).
    """

    input: Annotated[list[str], _texts("input")]
    kind: Literal["query", "document"] = "document"
    outputs: list[Literal["dense", "sparse", "colbert"]] = Field(default_factory=lambda: list(OUTPUTS), min_length=1)
    max_length: int | None = Field(default=None, ge=2)
    encoding_format: Literal["float", "base64"] = "float"
    colbert_format: Literal["float", "base64"] = "base64"
    colbert_dtype: Literal["float16", "float32"] = "float16"


class EmbedRequest(_Body):
    """``POST /embed`` (text-embeddings-inference): dense vectors."""

    inputs: Annotated[list[str], _texts("inputs")]
    normalize: bool = True
    truncate: bool = False
    truncation_direction: Literal["Right", "right"] = "Right"
    prompt_name: None = None
    dimensions: int | None = None


class EmbedSparseRequest(_Body):
    """``POST /embed_sparse`` (text-embeddings-inference): lexical weights as ``{index, value}`` lists."""

    inputs: Annotated[list[str], _texts("inputs")]
    truncate: bool = False
    truncation_direction: Literal["Right", "right"] = "Right"
    prompt_name: None = None


class TokenizeRequest(_Body):
    """``POST /tokenize``: token ids and pieces with character offsets."""

    inputs: Annotated[list[str], _texts("inputs")]
    add_special_tokens: bool = True
