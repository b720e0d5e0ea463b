"""Errors of the loader: each one is the user's to fix, so each says where and what."""

from __future__ import annotations

from pgsearch.errors import PgsearchError


def printable(text: str) -> str:
    """`text` that can always be printed and stored: a lone surrogate (an undecodable file-name
    byte, a JSON "\\ud800") as a backslash escape, NUL as \\x00. An error message quotes the
    user's data, and printing it must not fail with UnicodeEncodeError in place of the error."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


class LoadInputError(PgsearchError):
    """The folder, file or option given to `pgsearch load` cannot be used."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(printable(str(message)), *args)


class AnnotationError(LoadInputError):
    """An annotation file is malformed; the message names the file and the location in it."""


class MetadataError(LoadInputError):
    """A metadata file (CSV / JSONL) is malformed or refers to unknown files."""


class EmbeddingsFileError(LoadInputError):
    """A file of precomputed embeddings (--embeddings) is malformed."""


class ModelError(PgsearchError):
    """An embedding model spec is malformed or the model cannot be built."""


class ModelUnavailable(ModelError):
    """The model's weights are not available here (no network, no cache, no file)."""


class TextNotSupported(ModelError):
    """The model has no text tower, so it cannot embed text prompts."""
