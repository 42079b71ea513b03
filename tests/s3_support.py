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
