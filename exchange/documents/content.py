"""What a document's bytes are, checked while they stream (`documents.md`, Upload):
the declared content type must match the magic bytes (text must be UTF-8), the size must
stay under the limit (the stream stops at once when it does not), and empty is refused.
Each refusal is a domain error (`UnsupportedContent`, `TooLarge`, `EmptyContent`).

Magic bytes alone let an executable pass with a `%PDF-` prefix, and any zip pass as DOCX,
including one that inflates a thousandfold. So the end of the stream is checked too: a
PDF ends with its `%%EOF` trailer, and a DOCX's zip central directory (at the end of the
file) must be readable, name the parts every Word document has, and declare no more
content than the document limit, at no more than 100 times the file's size.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import queue
import threading
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final

from exchange.errors import EmptyContent, TooLarge, UnsupportedContent

#: Content sent inline in a DocumentReference (`documents.md`: up to 10 MiB; larger
#: documents are uploaded as a Binary first).
INLINE_CONTENT_LIMIT: Final = 10 * 1024 * 1024
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
PDF: Final = "application/pdf"
DOCX: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
#: ISO 32000: the trailer's `%%EOF` is in the last KiB (PDF readers look no further).
PDF_TRAILER_WINDOW: Final = 1024
#: How much of a DOCX's end is kept to read its central directory (Word documents' are
#: a few KiB; the end-of-central-directory record may trail a 64 KiB comment).
DOCX_TAIL: Final = 1024 * 1024
#: The most a DOCX may declare it inflates to, relative to its size (zip bombs: 1000+).
MAX_DOCX_RATIO: Final = 100
DOCX_PARTS: Final = ("[Content_Types].xml", "word/document.xml")


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, without parameters, lower case."""
    return (header or "").split(";", 1)[0].strip().lower()


class CheckedContent:
    """Wraps a stream of plaintext pieces: checks type, size and digests as they pass."""

    def __init__(self, pieces: Iterable[bytes], declared: str, max_bytes: int) -> None:
        if declared not in ACCEPTED:
            raise UnsupportedContent(
                f"{declared or 'no content type'} is not an accepted document type"
            )
        self._pieces = pieces
        self._declared = declared
        self._max = max_bytes
        self.size = 0
        self._digests = _Digests()
        self._text = codecs.getincrementaldecoder("utf-8")() if declared == "text/plain" else None
        keep = {PDF: PDF_TRAILER_WINDOW, DOCX: DOCX_TAIL}.get(declared, 0)
        self._tail = _Tail(keep)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._checked()
        finally:
            # Ended, refused or abandoned: the digest thread (if any) stops either way.
            self._digests.end()

    def _checked(self) -> Iterator[bytes]:
        head = b""
        for piece in self._pieces:
            if not piece:
                continue
            self.size += len(piece)
            if self.size > self._max:
                raise TooLarge(f"the document is larger than {self._max} bytes")
            if len(head) < _SNIFF:
                head += piece[: _SNIFF - len(head)]
                if len(head) >= _SNIFF:
                    self._check_magic(head)
            self._check_text(piece, final=False)
            self._tail.add(piece)
            self._digests.update(piece)
            yield piece
        if self.size == 0:
            raise EmptyContent("the document is empty")
        if len(head) < _SNIFF:
            self._check_magic(head)
        self._check_text(b"", final=True)
        if self._declared == PDF:
            self._check_pdf_trailer()
        elif self._declared == DOCX:
            self._check_docx()

    def _check_pdf_trailer(self) -> None:
        if b"%%EOF" not in self._tail.bytes()[-PDF_TRAILER_WINDOW:]:
            raise UnsupportedContent(
                "the content is not application/pdf (no %%EOF trailer at its end)"
            )

    def _check_docx(self) -> None:
        tail = self._tail.bytes()
        try:
            with zipfile.ZipFile(_TailFile(tail, self.size)) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, ValueError, EOFError, OSError):
            raise UnsupportedContent(
                "the content is not a readable DOCX (its zip directory cannot be read)"
            ) from None
        names = {entry.filename for entry in entries}
        missing = [part for part in DOCX_PARTS if part not in names]
        if missing:
            raise UnsupportedContent(
                f"the content is not a Word document (no {', '.join(missing)})"
            )
        inflated = sum(entry.file_size for entry in entries)
        if inflated > self._max or inflated > MAX_DOCX_RATIO * self.size:
            raise UnsupportedContent(
                f"the DOCX declares {inflated} bytes of content in {self.size}: refused "
                f"(at most the document limit, and {MAX_DOCX_RATIO} times its size)"
            )
        if sum(entry.compress_size for entry in entries) > self.size:
            raise UnsupportedContent("the DOCX's zip directory does not match the file")

    def _check_magic(self, head: bytes) -> None:
        signatures = _MAGIC.get(self._declared)
        if signatures is not None and not head.startswith(signatures):
            raise UnsupportedContent(f"the content is not {self._declared}")

    def _check_text(self, piece: bytes, final: bool) -> None:
        if self._text is None:
            return
        try:
            self._text.decode(piece, final=final)
        except UnicodeDecodeError:
            raise UnsupportedContent("text/plain content must be UTF-8") from None

    @property
    def sha256_hex(self) -> str:
        """Lowercase hex SHA-256 of the plaintext (the `sha256` extension, ETag); read
        once the stream has been consumed."""
        return self._digests.sha256_hex()

    @property
    def sha1_digest(self) -> bytes:
        """Raw SHA-1 (R4 `Attachment.hash`); read once the stream has been consumed."""
        return self._digests.sha1_digest()


class _Digests:
    """The SHA-256 and SHA-1 of a stream of pieces. Small pieces are hashed in the
    caller's thread (a thread costs more than hashing them: inline content of a few
    hundred KiB); from the first large piece on, they are hashed in a thread of the
    stream's own, since hashlib releases the interpreter lock over large pieces, so an
    upload's two digests run beside its socket reads, encryption, writes and fsync
    (they were a quarter of a 5 MiB upload's time: bench/profiles/documents.md). The
    queue holds a few pieces at most, so memory stays bounded by the piece size; `end`
    tells the thread to stop after the pieces it holds, and reading a digest waits for
    that."""

    #: The smallest piece worth hashing in the thread (1 MiB reads of a request body).
    LARGE: Final = 256 * 1024
    #: Pieces waiting to be hashed, at most (1 MiB each from a request body).
    WAITING: Final = 4

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1(usedforsecurity=False)  # R4 Attachment.hash is SHA-1
        # Made at the first large piece, with the thread: inline content needs neither.
        self._waiting: queue.SimpleQueue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        # Room for a piece in the queue, taken by `update` and given back once hashed.
        # The queue itself is unbounded, so `end` never blocks: an abandoned stream may
        # be closed by the garbage collector in any thread, even the digests' own.
        self._room = threading.Semaphore(self.WAITING)
        self._ended = False

    def update(self, piece: bytes) -> None:
        if self._ended:
            raise ValueError("the stream has ended")
        if self._waiting is None:
            if len(piece) < self.LARGE:
                self._hash(piece)
                return
            self._waiting = self._start()
        self._room.acquire()
        # The thread reads the piece later: it must not change meanwhile.
        self._waiting.put(piece if isinstance(piece, bytes) else bytes(piece))

    def _start(self) -> queue.SimpleQueue[bytes | None]:
        waiting: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(waiting,), name="digests", daemon=True
        )
        self._thread.start()
        return waiting

    def _hash(self, piece: bytes) -> None:
        self._sha256.update(piece)
        self._sha1.update(piece)

    def _run(self, waiting: queue.SimpleQueue[bytes | None]) -> None:
        while (piece := waiting.get()) is not None:
            self._hash(piece)
            self._room.release()

    def end(self) -> None:
        """No more pieces (the stream ended, or was refused or abandoned)."""
        if not self._ended:
            self._ended = True
            if self._waiting is not None:
                self._waiting.put(None)

    def _done(self) -> None:
        self.end()
        if self._thread is not None:
            self._thread.join()

    def sha256_hex(self) -> str:
        self._done()
        return self._sha256.hexdigest()

    def sha1_digest(self) -> bytes:
        self._done()
        return self._sha1.digest()


class _Tail:
    """The last `keep` bytes of a stream, without holding the rest."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._pieces: deque[bytes] = deque()
        self._held = 0

    def add(self, piece: bytes) -> None:
        if not self._keep:
            return
        self._pieces.append(piece)
        self._held += len(piece)
        while self._pieces and self._held - len(self._pieces[0]) >= self._keep:
            self._held -= len(self._pieces.popleft())

    def bytes(self) -> bytes:
        return b"".join(self._pieces)[-self._keep :] if self._keep else b""


class _TailFile(io.RawIOBase):
    """The end of a file of `size` bytes, readable at its real offsets (for `zipfile`);
    reading before the kept tail is an error: a directory that far back is refused."""

    def __init__(self, tail: bytes, size: int) -> None:
        self._tail = tail
        self._start = size - len(tail)
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = base + offset
        if self._position < 0:
            raise ValueError("seek before the start of the file")
        return self._position

    def read(self, size: int = -1) -> bytes:
        if self._position < self._start:
            raise ValueError("the zip directory is not within the end of the file")
        begin = self._position - self._start
        end = len(self._tail) if size is None or size < 0 else begin + size
        data = self._tail[begin:end]
        self._position += len(data)
        return data
