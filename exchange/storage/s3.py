"""The `s3` blob store: boto3 against AWS S3 or any S3-compatible server (endpoint
override), multipart uploads for large objects, vendor errors translated (to the
protocol's `BlobMissing` and `StorageUnavailable`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from exchange.storage.blobs import BlobMissing, StorageUnavailable, check_name

PART_SIZE: Final = 8 * 1024 * 1024
READ_SIZE: Final = 1024 * 1024


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
            ),
        )

    def _key(self, name: str) -> str:
        return f"{self._prefix}{check_name(name)}"

    def write(self, name: str, pieces: Iterable[bytes]) -> int:
        """Upload: one PUT for small objects, multipart (8 MiB parts) for large ones; a
        failed multipart upload is aborted, so no object appears under the name."""
        key = self._key(name)
        buffer = bytearray()
        iterator = iter(pieces)
        for piece in iterator:
            buffer += piece
            if len(buffer) > PART_SIZE:
                return self._multipart(key, buffer, iterator)
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=bytes(buffer), **self._encryption
            )
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(
                f"the object store refused the upload ({type(error).__name__})"
            ) from None
        return len(buffer)

    def _multipart(self, key: str, buffer: bytearray, rest: Iterator[bytes]) -> int:
        try:
            upload = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, **self._encryption
            )["UploadId"]
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(
                f"the object store refused the upload ({type(error).__name__})"
            ) from None
        parts: list[dict[str, Any]] = []
        size = 0
        try:

            def send(data: bytes) -> None:
                answer = self._s3.upload_part(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=len(parts) + 1,
                    Body=data,
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})

            for piece in rest:
                buffer += piece
                while len(buffer) >= PART_SIZE:
                    send(bytes(buffer[:PART_SIZE]))
                    size += PART_SIZE
                    del buffer[:PART_SIZE]
            if buffer or not parts:
                send(bytes(buffer))
                size += len(buffer)
            self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException as error:
            # If the abort fails too, the sweeper aborts the upload (`clear_abandoned`).
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload)
            if isinstance(error, ClientError | BotoCoreError):
                raise StorageUnavailable(
                    f"the object store failed during upload ({type(error).__name__})"
                ) from None
            raise
        return size

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


def _stream(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(READ_SIZE)
    except BotoCoreError as error:
        raise StorageUnavailable(
            f"the object store stopped sending ({type(error).__name__})"
        ) from None
    finally:
        body.close()
