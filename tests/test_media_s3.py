"""The S3 media store against a real S3 server process (moto's server mode, tests/s3_support.py).

Credentials are checked by a second server with moto's IAM emulation switched on:
by default moto accepts any key, which would let a wrong-credentials test pass for
the wrong reason.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from tests.s3_support import MotoServer
from workers.errors import TransientError
from workers.media.s3 import MULTIPART_THRESHOLD, S3MediaStore
from workers.media import store_from_settings
from workers.media.store import MediaMissing, MediaStoreError, MediaStoreUnavailable
from workers.settings import Settings


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.kill()


def _store(server: MotoServer, bucket: str, prefix: str = "", tmp_path=None, **kwargs) -> S3MediaStore:
    return S3MediaStore(
        bucket, prefix, endpoint_url=server.endpoint, region="us-east-1",
        access_key_id=server.access_key_id, secret_access_key=server.secret_access_key,
        scratch=tmp_path / "scratch" if tmp_path else None, **kwargs,
    )


@pytest.fixture()
def store(moto, tmp_path):
    bucket = moto.create_bucket(f"tt-{uuid.uuid4().hex[:12]}")
    return _store(moto, bucket, "deployment", tmp_path)


def test_round_trip(store, tmp_path):
    store.put("videos/j1/source.mp4", b"video bytes")
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 1000)
    store.put_file("frames/j1.npz", source)
    assert source.exists()
    store.put_file("scores/j1.json", source, move=True)
    assert not source.exists()
    assert store.get("videos/j1/source.mp4") == b"video bytes"
    with store.open("frames/j1.npz") as fh:  # streamed in pieces
        assert fh.read(10) == b"x" * 10 and len(fh.read()) == 990
    with store.local_path("videos/j1/source.mp4") as path:
        assert path.read_bytes() == b"video bytes" and path.suffix == ".mp4"
        assert path.is_relative_to(tmp_path / "scratch")
    assert not path.exists()  # the temporary copy is gone
    assert store.exists("scores/j1.json") and not store.exists("scores/j2.json")
    assert store.location("videos/j1/source.mp4") == f"s3://{store.bucket}/deployment/videos/j1/source.mp4"
    with pytest.raises(MediaMissing, match="videos/nope/source.mp4"):
        store.get("videos/nope/source.mp4")
    with pytest.raises(MediaMissing):
        with store.local_path("videos/nope/source.mp4"):
            pass
    with pytest.raises(ValueError):
        store.put("../escape", b"")


def test_streaming_writer_is_multipart_and_atomic(store, moto):
    chunk = os.urandom(1 << 20)
    with store.writer("frames/big.npz") as fh:
        for _ in range(MULTIPART_THRESHOLD // len(chunk) + 8):  # past the multipart threshold
            fh.write(chunk)
    head = moto.client().head_object(Bucket=store.bucket, Key="deployment/frames/big.npz")
    assert head["ContentLength"] == (MULTIPART_THRESHOLD // len(chunk) + 8) * len(chunk)
    assert "-" in head["ETag"]  # a multipart upload's ETag: "<md5 of md5s>-<parts>"
    with store.open("frames/big.npz") as fh:
        assert fh.read(len(chunk)) == chunk

    with pytest.raises(RuntimeError):
        with store.writer("frames/broken.npz") as fh:
            fh.write(b"half a batch")
            raise RuntimeError("the decoder died")
    assert not store.exists("frames/broken.npz")


def test_keys_are_listed_across_pages_under_the_prefix(store, moto):
    store.LIST_PAGE = 7  # a page of 7 keys: 25 objects take four listing requests
    for i in range(25):
        store.put(f"evidence/j{i:02d}/red-v1.jpg", b"jpeg")
    store.put("frames/j00.npz", b"batch")
    moto.client().put_object(Bucket=store.bucket, Key="elsewhere/frames/x.npz", Body=b"not ours")
    assert list(store.keys("evidence")) == [f"evidence/j{i:02d}/red-v1.jpg" for i in range(25)]
    assert list(store.keys("frames")) == ["frames/j00.npz"]
    assert len(list(store.keys())) == 26
    assert list(store.keys("evidence/j03")) == ["evidence/j03/red-v1.jpg"]


def test_delete(store):
    store.put("videos/j1/source.mp4", b"1")
    store.delete("videos/j1/source.mp4")
    store.delete("videos/j1/source.mp4")  # already gone: no error
    assert not store.exists("videos/j1/source.mp4") and list(store.keys("videos")) == []


def test_housekeeping_drops_stale_downloads_and_unfinished_uploads(store, moto, tmp_path):
    with store.download_area() as folder:
        assert folder.is_relative_to(tmp_path / "scratch")
        (folder / "video.mp4").write_bytes(b"partial")
    assert not folder.exists()
    stale = tmp_path / "scratch" / "dl-dead-worker"
    stale.mkdir(parents=True)
    (stale / "video.mp4.part").write_bytes(b"left by a killed worker")
    old = time.time() - 7200
    os.utime(stale / "video.mp4.part", (old, old))
    os.utime(stale, (old, old))
    fresh = tmp_path / "scratch" / "dl-busy-worker"
    fresh.mkdir()
    client = moto.client()
    client.create_multipart_upload(Bucket=store.bucket, Key="deployment/videos/dead/source.mp4")
    assert store.drop_stale_downloads(older_than=0) >= 2
    assert not stale.exists()
    assert client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []

    # The pipeline's housekeeping over this store: media of unknown jobs go, evidence and targets stay.
    from workers.pipeline.stages import LoadedModels, StageContext, housekeeping

    settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'hk.db'}")
    for key in ("frames/gone.npz", "scores/gone.json", "videos/gone/source.mp4", "evidence/gone/red-v1.jpg", "targets/red/current.json"):
        store.put(key, b"1")
    housekeeping(StageContext(settings, store, LoadedModels(settings)))
    assert sorted(store.keys()) == ["evidence/gone/red-v1.jpg", "targets/red/current.json"]


def test_missing_bucket_is_a_clear_final_error(moto, tmp_path):
    store = _store(moto, "tt-no-such-bucket", "", tmp_path)
    for call in (lambda: store.put("a/b", b"1"), lambda: store.get("a/b"), lambda: list(store.keys()), store.check):
        with pytest.raises(MediaStoreError, match="bucket 'tt-no-such-bucket' does not exist") as info:
            call()
        assert not isinstance(info.value, TransientError)  # a setup error: retrying does not help


def test_wrong_credentials_are_refused_without_showing_the_secret(tmp_path):
    server = MotoServer(tmp_path / "auth", auth=True)
    server.start()
    try:
        bucket = server.create_bucket("tt-checked")
        good = _store(server, bucket, "", tmp_path)
        good.put("a/b", b"1")
        assert good.get("a/b") == b"1"
        for key_id, secret in (("AKIAWRONGWRONGWRONG0", "not-the-secret-123"), (server.access_key_id, "not-the-secret-123")):
            bad = S3MediaStore(bucket, "", endpoint_url=server.endpoint, access_key_id=key_id, secret_access_key=secret, scratch=tmp_path)
            for call in (lambda: bad.put("a/c", b"1"), lambda: bad.get("a/b"), lambda: list(bad.keys())):
                with pytest.raises(MediaStoreError, match="refused the credentials") as info:
                    call()
                assert "not-the-secret-123" not in str(info.value) and not isinstance(info.value, TransientError)
        assert not good.exists("a/c")
    finally:
        server.kill()


class _KillingReader:
    """A large upload's source that stops (or kills) the server once ``after`` bytes are read."""

    def __init__(self, data: bytes, after: int, action) -> None:
        self.data, self.after, self.action, self.pos, self.fired = data, after, action, 0, False

    def read(self, size: int = -1) -> bytes:
        if self.pos >= self.after and not self.fired:
            self.fired = True
            self.action()
        end = len(self.data) if size is None or size < 0 else self.pos + size
        out, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return out


def test_server_stopping_mid_upload_is_retried_and_nothing_is_lost(tmp_path):
    from workers.pipeline.tasks import TRANSIENT

    data = os.urandom(3 * (16 << 20))
    server = MotoServer(tmp_path / "s3")
    server.start()
    try:
        bucket = server.create_bucket("tt-outage")
        store = _store(server, bucket, "", tmp_path, read_timeout=2, connect_timeout=2, max_attempts=2)

        # Paused mid-upload (SIGSTOP): the upload times out with a transient error, no object appears.
        with pytest.raises(MediaStoreUnavailable, match="unreachable|answered") as info:
            store.put("videos/j1/source.mp4", _KillingReader(data, 20 << 20, lambda: server.proc.send_signal(signal.SIGSTOP)))
        assert isinstance(info.value, TRANSIENT)  # what the stage tasks retry
        server.proc.send_signal(signal.SIGCONT)
        assert not store.exists("videos/j1/source.mp4")  # never half an object
        store.put("videos/j1/source.mp4", _KillingReader(data, len(data) + 1, lambda: None))  # the retry
        assert store.get("videos/j1/source.mp4") == data

        # Killed mid-upload (SIGKILL): the same error; once a server is back, the retry stores it whole.
        with pytest.raises(MediaStoreUnavailable) as info:
            store.put("videos/j2/source.mp4", _KillingReader(data, 20 << 20, server.kill))
        assert isinstance(info.value, TRANSIENT)
        with pytest.raises(MediaStoreUnavailable, match="unreachable"):
            store.exists("videos/j2/source.mp4")
        server.start()  # same port; moto keeps nothing in memory across a restart
        server.create_bucket(bucket)
        store.put("videos/j2/source.mp4", _KillingReader(data, len(data) + 1, lambda: None))
        assert store.get("videos/j2/source.mp4") == data
    finally:
        if server.proc and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.kill()


def test_multipart_answer_without_upload_id_is_a_transient_error(tmp_path):
    """A server dying as it answers can leave CreateMultipartUpload's answer without
    its UploadId: boto3's transfer layer fails with a KeyError, the store retries."""
    import io
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Truncated(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):  # CreateMultipartUpload: a well-formed answer with no UploadId
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'<?xml version="1.0"?><InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>'
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Truncated)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        store = S3MediaStore("b", "", endpoint_url=f"http://127.0.0.1:{httpd.server_address[1]}", region="us-east-1",
                             access_key_id="id", secret_access_key="secret", scratch=tmp_path, max_attempts=1)
        with pytest.raises(MediaStoreUnavailable, match="incomplete answer") as info:
            store.put("videos/j1/source.mp4", io.BytesIO(b"x" * (MULTIPART_THRESHOLD + 1)))
        assert isinstance(info.value, TransientError)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_settings_choose_the_store(moto, tmp_path):
    s3 = store_from_settings(Settings(
        _env_file=None, data_dir=tmp_path / "data", media_url="s3://tt-any/some/prefix", s3_endpoint_url=moto.endpoint,
        s3_access_key_id="id", s3_secret_access_key="secret-value-xyz",
    ))
    assert isinstance(s3, S3MediaStore) and (s3.bucket, s3.prefix) == ("tt-any", "some/prefix")
    assert s3.scratch == tmp_path / "data" / "scratch"
    assert "secret-value-xyz" not in s3.describe()
    assert store_from_settings(Settings(_env_file=None, data_dir=tmp_path / "data")).describe() == str(tmp_path / "data" / "media")
    assert store_from_settings(Settings(_env_file=None, media_url=f"file://{tmp_path}/shared")).describe() == f"{tmp_path}/shared"
    with pytest.raises(MediaStoreError, match="TT_MEDIA_URL"):
        store_from_settings(Settings(_env_file=None, media_url="ftp://example.org/x"))
    with pytest.raises(MediaStoreError, match="TT_MEDIA_URL"):
        store_from_settings(Settings(_env_file=None, media_url="s3:///no-bucket"))
