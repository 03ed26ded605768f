"""What a document's bytes are, checked while they stream (`documents.md`, Upload):
the declared content type must match the magic bytes (text must be UTF-8), the size must
stay under the limit (the stream stops at once when it does not), and empty is refused."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterable, Iterator
from typing import Final

ACCEPTED: Final = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/plain",
    "image/png",
    "image/jpeg",
)
_MAGIC: Final = {
    "application/pdf": (b"%PDF-",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
_SNIFF: Final = 16


class ContentError(ValueError):
    """The content cannot be accepted; `status` is the HTTP answer (400, 413, 415, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, without parameters, lower case."""
    return (header or "").split(";", 1)[0].strip().lower()


class CheckedContent:
    """Wraps a stream of plaintext pieces: checks type, size and digests as they pass."""

    def __init__(self, pieces: Iterable[bytes], declared: str, max_bytes: int) -> None:
        if declared not in ACCEPTED:
            raise ContentError(415, f"{declared or 'no content type'} is not an accepted document type")
        self._pieces = pieces
        self._declared = declared
        self._max = max_bytes
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1(usedforsecurity=False)  # R4 Attachment.hash is SHA-1
        self._text = codecs.getincrementaldecoder("utf-8")() if declared == "text/plain" else None

    def __iter__(self) -> Iterator[bytes]:
        head = b""
        for piece in self._pieces:
            if not piece:
                continue
            self.size += len(piece)
            if self.size > self._max:
                raise ContentError(413, f"the document is larger than {self._max} bytes")
            if len(head) < _SNIFF:
                head += piece[: _SNIFF - len(head)]
                if len(head) >= _SNIFF:
                    self._check_magic(head)
            self._check_text(piece, final=False)
            self._sha256.update(piece)
            self._sha1.update(piece)
            yield piece
        if self.size == 0:
            raise ContentError(400, "the document is empty")
        if len(head) < _SNIFF:
            self._check_magic(head)
        self._check_text(b"", final=True)

    def _check_magic(self, head: bytes) -> None:
        signatures = _MAGIC.get(self._declared)
        if signatures is not None and not head.startswith(signatures):
            raise ContentError(415, f"the content is not {self._declared}")

    def _check_text(self, piece: bytes, final: bool) -> None:
        if self._text is None:
            return
        try:
            self._text.decode(piece, final=final)
        except UnicodeDecodeError:
            raise ContentError(415, "text/plain content must be UTF-8") from None

    @property
    def sha256_hex(self) -> str:
        """Lowercase hex SHA-256 of the plaintext (the `sha256` extension, ETag)."""
        return self._sha256.hexdigest()

    @property
    def sha256_digest(self) -> bytes:
        """Raw SHA-256 (for `Repr-Digest`)."""
        return self._sha256.digest()

    @property
    def sha1_digest(self) -> bytes:
        """Raw SHA-1 (R4 `Attachment.hash`)."""
        return self._sha1.digest()
