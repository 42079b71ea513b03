"""The media store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage, R2, moto).

``TT_MEDIA_URL=s3://bucket/prefix`` (with ``TT_S3_ENDPOINT_URL`` for anything but AWS):
every host of a deployment then reads and writes the same objects over the network,
and shares no disk.

Why boto3: it is the AWS SDK itself, kept up to date with the protocol; its
``upload_fileobj``/``download_file`` do multipart transfers (parts retried on their own,
an interrupted upload aborted), its retry modes handle throttling and 5xx, and
every S3 implementation tests itself against it. obstore and s3fs are thinner over
the same calls but would add their own retry and error vocabularies to map.

Semantics kept from the folder store: a PUT (and a completed multipart upload) is
atomic, so a reader sees the whole object or none; ``local_path`` gives a temporary
local copy (PyAV, OpenCV and zipfile need a seekable file), removed afterwards.
Errors say what to fix: a missing bucket or refused credentials are ``MediaStoreError``
(final: the video fails with that reason), an unreachable endpoint, a timeout, 5xx or
throttling are ``MediaStoreUnavailable`` (a ``TransientError``: the task retries).
Credentials are never logged or put into messages.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from workers.media.store import (
    MediaMissing,
    MediaStore,
    MediaStoreError,
    MediaStoreKind,
    MediaStoreUnavailable,
    check_key,
    drop_stale_folders,
)

# Uploads above this go in parts of PART_SIZE (S3's smallest part is 5 MiB).
MULTIPART_THRESHOLD = 32 << 20
PART_SIZE = 16 << 20
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "503",
    "500",
    "502",
    "504",
}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise MediaStoreError(f"TT_MEDIA_URL: {url!r} is not an s3://bucket[/prefix] URL")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    return parts.netloc, prefix


def _without_userinfo(url: str | None) -> str | None:
    """An endpoint URL as it may be shown (no user:password@)."""
    if not url:
        return url
    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl() if parts.hostname else url


class S3MediaStore(MediaStore):
    """Objects in ``bucket`` under ``prefix/``; local scratch files (downloads, temporary
    copies) under ``scratch``, a folder of this host."""

    SCRATCH_PREFIX = "dl-"
    LIST_PAGE = 1000  # keys per listing request (S3's maximum)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        scratch: str | Path | None = None,
        max_attempts: int = 4,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        # Given keys win; else boto3's own chain (AWS_* variables, ~/.aws, instance roles).
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region or None,
        )
        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            signature_version="s3v4",
            # Path-style addressing is what self-hosted servers (MinIO, moto, Garage) answer to.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        self.client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE, max_concurrency=4, use_threads=True
        )
        self.scratch = Path(scratch) if scratch else Path(tempfile.gettempdir()) / "tt-media-scratch"

    # --- naming ---------------------------------------------------------------------

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def describe(self) -> str:
        where = f" (endpoint {_without_userinfo(self.endpoint_url)})" if self.endpoint_url else ""
        return f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "") + where

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"

    # --- errors -----------------------------------------------------------------------

    def _error(self, exc: BaseException, action: str, key: str | None) -> Exception:
        """A botocore/boto3 error as the store's own (see the module docstring)."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        what = f"{action} {key}" if key else action
        where = self.describe()
        # boto3's transfer layer wraps the server's answer (S3UploadFailedError ...): find it.
        chain, seen = [], exc
        while seen is not None and len(chain) < 8:
            chain.append(seen)
            seen = seen.__cause__ or seen.__context__
        known = (
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
            EndpointConnectionError,
            ConnectTimeoutError,
            ReadTimeoutError,
            ConnectionClosedError,
            ResponseStreamingError,
            ConnectionError,
        )
        cause = next((e for e in chain if isinstance(e, known)), exc)
        if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
            return MediaStoreError(
                f"media store {where}: no S3 credentials (set TT_S3_ACCESS_KEY_ID and TT_S3_SECRET_ACCESS_KEY, "
                "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)"
            )
        if isinstance(
            cause,
            (
                EndpointConnectionError,
                ConnectTimeoutError,
                ReadTimeoutError,
                ConnectionClosedError,
                ResponseStreamingError,
                ConnectionError,
                OSError,
            ),
        ):
            return MediaStoreUnavailable(f"media store {where} unreachable while trying to {what} ({type(cause).__name__})")
        if isinstance(cause, ClientError):
            error = cause.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return MediaStoreError(f"media store {where}: bucket {self.bucket!r} does not exist (create it, or fix TT_MEDIA_URL)")
            if code in ("404", "NotFound") and not key:  # HEAD on the bucket has no body to name the error
                return MediaStoreError(f"media store {where}: bucket {self.bucket!r} does not exist (create it, or fix TT_MEDIA_URL)")
            if code in ("NoSuchKey", "404", "NotFound") and key:
                return MediaMissing(f"{key}: not in the media store at {where}")
            if code in _CREDENTIAL_CODES or status == 403:
                return MediaStoreError(
                    f"media store {where}: the S3 server refused the credentials ({code or status}) while trying to {what}; "
                    "check TT_S3_ACCESS_KEY_ID/TT_S3_SECRET_ACCESS_KEY and the key's permissions on the bucket"
                )
            if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
                return MediaStoreUnavailable(f"media store {where}: the S3 server answered {code or status} while trying to {what}")
            return MediaStoreError(f"media store {where}: could not {what} ({code or status}: {error.get('Message', '')})")
        if isinstance(exc, KeyError):  # e.g. a CreateMultipartUpload answer without its UploadId, from a server dying as it answered
            return MediaStoreUnavailable(f"media store {where}: incomplete answer from the S3 server (no {exc}) while trying to {what}")
        return MediaStoreUnavailable(f"media store {where}: could not {what} ({type(exc).__name__}: {exc})")

    @contextmanager
    def _calling(self, action: str, key: str | None = None, transfer: bool = False) -> Iterator[None]:
        """Store errors for the calls inside; ``transfer``: a boto3 transfer-manager call,
        which reads fields of the server's answers without checking they are there."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError, Boto3Error, ConnectionError) as exc:
            raise self._error(exc, action, key) from None
        except KeyError as exc:
            if not transfer:
                raise
            raise self._error(exc, action, key) from None

    # --- objects ----------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        name = self._name(key)
        with self._calling("store", key, transfer=True):
            if isinstance(data, (bytes, bytearray, memoryview)):
                self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data))
            else:  # multipart above MULTIPART_THRESHOLD; the object appears when the upload completes
                self.client.upload_fileobj(data, self.bucket, name, Config=self.transfer)

    def put_file(self, key: str, path: str | Path, move: bool = False) -> None:
        name = self._name(key)
        with self._calling("store", key, transfer=True):
            self.client.upload_file(str(path), self.bucket, name, Config=self.transfer)
        if move:
            Path(path).unlink(missing_ok=True)

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        self._name(key)
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.scratch) as tmp:
            yield tmp
            tmp.seek(0)
            self.put(key, tmp)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        name = self._name(key)
        with self._calling("read", key):
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        try:
            yield _Reading(body, self, key)
        finally:
            body.close()

    def get(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        name = self._name(key)
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="copy-", dir=self.scratch) as folder:
            path = Path(folder) / PurePosixPath(key).name
            with self._calling("read", key, transfer=True):
                self.client.download_file(self.bucket, name, str(path), Config=self.transfer)
            yield path

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        name = self._name(key)
        try:
            with self._calling("look up", key):
                try:
                    return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                        return None
                    raise
        except MediaMissing:
            return None

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._calling("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def keys(self, prefix: str = "") -> Iterator[str]:
        if prefix:
            check_key(prefix)
        folder = self._name(prefix) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        with self._calling("list", prefix or None):  # one page in memory at a time
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, PaginationConfig={"PageSize": self.LIST_PAGE}):
                for item in page.get("Contents", []):
                    key = self._key(item["Key"])
                    if not any(part.startswith(".") for part in key.split("/")):
                        yield key

    def check(self) -> None:
        """Raise the store's error now when the bucket cannot be used (a worker's start, ``config``)."""
        with self._calling("open the bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    # --- local scratch and housekeeping ---------------------------------------------------

    @contextmanager
    def download_area(self) -> Iterator[Path]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=self.SCRATCH_PREFIX, dir=self.scratch) as folder:
            yield Path(folder)

    def drop_stale_downloads(self, older_than: float) -> int:
        """Local download areas and copies left by dead workers of this host, and multipart
        uploads they never completed (they hold storage until aborted); how many."""
        dropped = drop_stale_folders(self.scratch, older_than)
        cutoff = datetime.now(timezone.utc).timestamp() - older_than
        with self._calling("list unfinished uploads"):
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
            for upload in listing.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    dropped += 1
        return dropped


class _Reading:
    """An object's body as a readable file whose network errors are the store's."""

    def __init__(self, body, store: S3MediaStore, key: str) -> None:
        self._body, self._store, self._key = body, store, key

    def read(self, size: int = -1) -> bytes:
        with self._store._calling("read", self._key):
            return self._body.read(None if size is None or size < 0 else size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()


def s3_store_from_settings(settings, url: str) -> S3MediaStore:
    """The bucket of ``url`` (``s3://bucket/prefix``), signed in with the ``s3_*`` settings."""
    bucket, prefix = parse_s3_url(url)
    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    return S3MediaStore(
        bucket,
        prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret,
        scratch=settings.data_dir / "scratch",
    )


STORE = MediaStoreKind(("s3",), "s3://bucket[/prefix]", s3_store_from_settings)
