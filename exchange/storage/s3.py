"""The `s3` blob store: boto3 against AWS S3 or any S3-compatible server (endpoint
override), multipart uploads for large objects, vendor errors translated (to the
protocol's `BlobMissing` and `StorageUnavailable`)."""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from exchange.storage.blobs import BlobMissing, StorageUnavailable, check_name

PART_SIZE: Final = 8 * 1024 * 1024
READ_SIZE: Final = 1024 * 1024
#: Parts of one upload being sent to the store at once (`_Parts`).
IN_FLIGHT: Final = 2
#: The largest document this store takes: S3 allows 10,000 parts, which at PART_SIZE
#: hold 80,000 MiB of ciphertext; 64 GiB of content leaves room for the AEAD's framing.
LARGEST_DOCUMENT: Final = 64 * 1024**3


class S3BlobStore:
    """Blobs as objects under `prefix` in `bucket`."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any | None = None,
        server_side_encryption: str | None = None,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._encryption = (
            {"ServerSideEncryption": server_side_encryption} if server_side_encryption else {}
        )
        self._s3 = client or boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                # Each of a worker's request threads may have IN_FLIGHT parts on their way
                # besides its own reads (botocore's default pool is 10 connections).
                max_pool_connections=32,
                # Every chunk read is authenticated by its AES-GCM tag (a flipped bit or a
                # swapped object fails it), so botocore's CRC32 of every GET body repeated
                # that work (5% of a 5 MiB download, bench/profiles/documents.md). Uploads
                # keep theirs: it catches damage in transit before the object is stored.
                response_checksum_validation="when_required",
            ),
        )

    def _key(self, name: str) -> str:
        return f"{self._prefix}{check_name(name)}"

    def write(self, name: str, pieces: Iterable[bytes]) -> int:
        """Upload: one PUT for small objects, multipart (8 MiB parts) for large ones; a
        failed multipart upload is aborted, so no object appears under the name."""
        key = self._key(name)
        held: list[bytes] = []
        size = 0
        iterator = iter(pieces)
        for piece in iterator:
            held.append(piece)
            size += len(piece)
            if size > PART_SIZE:
                return self._multipart(key, held, iterator)
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=b"".join(held), **self._encryption
            )
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(
                f"the object store refused the upload ({type(error).__name__})"
            ) from None
        return size

    def _multipart(self, key: str, held: list[bytes], rest: Iterator[bytes]) -> int:
        try:
            upload = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, **self._encryption
            )["UploadId"]
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(
                f"the object store refused the upload ({type(error).__name__})"
            ) from None
        parts = _Parts(self._s3, self._bucket, key, upload)
        try:
            for piece in held:
                parts.add(piece)
            held.clear()  # the first part's pieces are not kept through the whole upload
            for piece in rest:
                parts.add(piece)
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": parts.finished()},
            )
        except BaseException as error:
            parts.abandon()
            # If the abort fails too, the sweeper aborts the upload (`clear_abandoned`).
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload)
            if isinstance(error, ClientError | BotoCoreError):
                raise StorageUnavailable(
                    f"the object store failed during upload ({type(error).__name__})"
                ) from None
            raise
        return parts.size

    def read(self, name: str) -> Iterator[bytes]:
        """Stream the object in 1 MiB pieces; BlobMissing if it is not there."""
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self._key(name))["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobMissing(name) from None
            raise StorageUnavailable(
                f"the object store refused the read ({type(error).__name__})"
            ) from None
        except BotoCoreError as error:
            raise StorageUnavailable(
                f"the object store did not answer ({type(error).__name__})"
            ) from None
        return _stream(body)

    def delete(self, name: str) -> None:
        """Remove the object (S3 deletes of a missing key succeed)."""
        try:
            self._s3.delete_object(Bucket=self._bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(
                f"the object store refused the delete ({type(error).__name__})"
            ) from None

    def age(self, name: str) -> timedelta | None:
        """Time since the object was last modified (S3's clock)."""
        try:
            modified = self._s3.head_object(Bucket=self._bucket, Key=self._key(name))[
                "LastModified"
            ]
        except ClientError:
            return None
        except BotoCoreError as error:
            raise StorageUnavailable(
                f"the object store did not answer ({type(error).__name__})"
            ) from None
        age: timedelta = datetime.now(UTC) - modified
        return age

    def clear_abandoned(self, older_than: timedelta) -> int:
        """Abort multipart uploads under the prefix begun more than `older_than` ago and
        never completed (a process killed part-way, or an abort that failed): their parts
        are stored, and billed, until then."""
        limit = datetime.now(UTC) - older_than
        aborted = 0
        try:
            paginator = self._s3.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < limit:
                        self._s3.abort_multipart_upload(
                            Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(
                f"the object store did not list its uploads ({type(error).__name__})"
            ) from None
        return aborted

    def names(self) -> Iterator[str]:
        """Every blob under the prefix."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])[len(self._prefix) :]


class _Parts:
    """A multipart upload's parts of `PART_SIZE` (the last one smaller), each sent by a
    thread of the upload's own while the caller receives, encrypts and adds the pieces of
    the next. At most `IN_FLIGHT` parts are on their way at once: a part is joined only
    when there is room for it, so the caller waits rather than reading ahead, and memory
    stays at about `IN_FLIGHT` + 1 parts whatever the document's size. Sent one after
    another, the client's socket and the store's took turns, each idle while the other
    worked (bench/profiles/documents.md, "Eleventh pass")."""

    def __init__(self, s3: Any, bucket: str, key: str, upload: str) -> None:
        self._send = functools.partial(s3.upload_part, Bucket=bucket, Key=key, UploadId=upload)
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="s3-part")
        self._pending: deque[Future[dict[str, Any]]] = deque()
        self._stored: list[dict[str, Any]] = []
        self._held: list[memoryview] = []
        self._held_size = 0
        self._numbered = 0
        self.size = 0

    def add(self, piece: bytes) -> None:
        """Take the next piece; send every whole part there now is (a part that failed
        raises here). Each part is one join of the pieces it is made of, nothing more
        copied."""
        self.size += len(piece)
        rest = memoryview(piece)
        while len(rest) >= PART_SIZE - self._held_size:
            need = PART_SIZE - self._held_size
            self._room()
            self._submit(b"".join([*self._held, rest[:need]]))
            self._held, self._held_size = [], 0
            rest = rest[need:]
        if rest:
            self._held.append(rest)
            self._held_size += len(rest)

    def finished(self) -> list[dict[str, Any]]:
        """Send what is left as the last part, wait for every part to be stored, and
        list them in order (the first failure raises)."""
        if self._held or not self._numbered:
            self._room()
            self._submit(b"".join(self._held))
            self._held = []
        self._collect(down_to=0)
        self._pool.shutdown()
        return self._stored

    def abandon(self) -> None:
        """Drop the parts not yet begun and wait for those being sent, so none lands
        after the upload is aborted."""
        self._held = []
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    def _room(self) -> None:
        """Wait until one more part may go (`IN_FLIGHT` at most on their way)."""
        self._collect(down_to=IN_FLIGHT - 1)

    def _collect(self, down_to: int) -> None:
        """Take the oldest parts' answers, in order, until at most `down_to` are on their
        way (a part that failed raises)."""
        while len(self._pending) > down_to:
            self._stored.append(self._pending.popleft().result())

    def _submit(self, data: bytes) -> None:
        self._numbered += 1
        self._pending.append(self._pool.submit(self._part, self._numbered, data))

    def _part(self, number: int, data: bytes) -> dict[str, Any]:
        return {"PartNumber": number, "ETag": self._send(PartNumber=number, Body=data)["ETag"]}


def _stream(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(READ_SIZE)
    except BotoCoreError as error:
        raise StorageUnavailable(
            f"the object store stopped sending ({type(error).__name__})"
        ) from None
    finally:
        body.close()
