"""Request bodies of the bad-input corpus (`tests/bad_inputs/`) that are made at run time
rather than committed: too big, binary, or meant to be streamed. A corpus file names one of
these with `"generator": "<name>"`."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from tests.factories import NHS_SYSTEM

MIB = 1024 * 1024
_PIECE = 64 * 1024


@dataclass(frozen=True)
class ChunkedBody:
    """A body sent with `Transfer-Encoding: chunked` (no Content-Length), piece by piece."""

    head: bytes
    filler: bytes
    tail: bytes
    total: int

    def pieces(self) -> Iterator[bytes]:
        """The body in 64 KiB pieces: head, filler up to `total` bytes, tail."""
        yield self.head
        remaining = self.total - len(self.head) - len(self.tail)
        while remaining > 0:
            piece = self.filler * (min(_PIECE, remaining) // len(self.filler))
            yield piece
            remaining -= len(piece)
        yield self.tail


def _nested_patient(levels: int) -> bytes:
    """A Patient whose `extension` is `levels` arrays deep."""
    return b'{"resourceType":"Patient","extension":' + b"[" * levels + b"]" * levels + b"}"


def nested_json_100k_levels() -> bytes:
    """About 200 KB: under the size limit, far past any sane depth."""
    return _nested_patient(100_000)


def nested_json_10mib() -> bytes:
    """Ten MiB of brackets."""
    return _nested_patient(5 * MIB)


def json_number_900k_digits() -> bytes:
    """A plausible Patient with a 900,000-digit integer (about 880 KiB, under 1 MiB)."""
    return (
        b'{"resourceType":"Patient","identifier":[{"system":"'
        + NHS_SYSTEM.encode()
        + b'","value":"9000042089"}],"birthDate":"2015-03-02","multipleBirthInteger":'
        + b"9" * 900_000
        + b"}"
    )


@cache
def elf_executable() -> bytes:
    """A minimal x86-64 Linux executable (ELF header, one program header, `exit(0)`)."""
    code = b"\xb8\x3c\x00\x00\x00\x31\xff\x0f\x05"  # mov eax, 60; xor edi, edi; syscall
    entry_offset = 64 + 56
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x400000 + entry_offset, 64, 0, 0, 64, 56, 1, 64, 0, 0
    )
    program = struct.pack(
        "<IIQQQQQQ",
        1,
        5,
        0,
        0x400000,
        0x400000,
        entry_offset + len(code),
        entry_offset + len(code),
        0x1000,
    )
    return header + program + code


def pdf_header_then_elf() -> bytes:
    """`%PDF-` magic bytes, then an executable, and no `%%EOF` trailer."""
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + elf_executable()


@cache
def zip_bomb_docx() -> bytes:
    """A DOCX-shaped zip (~200 KiB) whose document part inflates to 200 MiB of spaces."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        bomb.writestr(
            "[Content_Types].xml",
            (
                '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                'content-types"><Override PartName="/word/document.xml" '
                'ContentType="application/vnd.openxmlformats-'
                'officedocument.wordprocessingml.document.main+xml"/></Types>'
            ),
        )
        with bomb.open("word/document.xml", "w", force_zip64=True) as part:
            blank = b" " * MIB
            for _ in range(200):
                part.write(blank)
    return archive.getvalue()


def chunked_patient_32mib() -> ChunkedBody:
    """A Patient whose name runs to 32 MiB."""
    return ChunkedBody(b'{"resourceType":"Patient","name":[{"text":"', b"a", b'"}]}', 32 * MIB)


def chunked_token_form_32mib() -> ChunkedBody:
    """A client-credentials form whose assertion runs to 32 MiB."""
    head = (
        b"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
        b"client-assertion-type%3Ajwt-bearer&client_assertion="
    )
    return ChunkedBody(head, b"A", b"", 32 * MIB)


GENERATORS: dict[str, Callable[[], bytes | ChunkedBody]] = {
    generator.__name__: generator
    for generator in (
        nested_json_100k_levels,
        nested_json_10mib,
        json_number_900k_digits,
        elf_executable,
        pdf_header_then_elf,
        zip_bomb_docx,
        chunked_patient_32mib,
        chunked_token_form_32mib,
    )
}
