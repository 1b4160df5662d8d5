"""Reading real files for indexing: discovery, text extraction with locations, structure-aware chunking.

Used by ``m3 index`` and usable by any loader (LangChain, LlamaIndex, a Ray job); nothing here knows
about databases or the model (the chunker takes a tokenizer). One module per concern:

* ``discover``: walk folders; hidden, ``.gitignore``d and binary files skipped; include/exclude globs.
* ``text``: plain text, code and markup in any common encoding (careful detection); Markdown headings.
* ``pdf`` (pages), ``office`` (DOCX by heading, PPTX by slide), ``html`` (by heading), ``notebooks`` (cells).
* ``records``: JSON Lines, JSON, CSV, TSV (one record per line / item / row).
* ``read``: ``read_records(file)`` for any of them; ``file_hash``.
* ``load``: ``file_chunks`` / ``load_chunks``: chunks with the ids and metadata ``m3 index`` stores.
* ``chunking``: token-bounded chunks that prefer paragraph, sentence, then word boundaries, as exact
  slices of the extracted text, each with its location (page, line range, heading path, cell).

The document parsers come with the ``files`` extra (``pip install 'm3-integrations[files]'``).
"""

from ._types import InputError, Record, Section, SourceFile
from .chunking import Chunk, chunk_record, chunk_spans, chunk_text, iter_chunks
from .discover import discover, looks_binary
from .load import FileChunk, file_chunks, load_chunks
from .read import file_hash, read_records
from .records import RESERVED_KEYS
from .text import decode, detect_encoding

__all__ = [
    "RESERVED_KEYS", "Chunk", "FileChunk", "InputError", "Record", "Section", "SourceFile", "chunk_record",
    "chunk_spans", "chunk_text", "decode", "detect_encoding", "discover", "file_chunks", "file_hash", "iter_chunks",
    "load_chunks", "looks_binary", "read_records",
]
