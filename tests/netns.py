"""Hosts for the multi-host test: Linux network namespaces on a bridge of the test's own.

``Network`` creates a bridge with address ``10.77.N.1/24`` (N: a /24 no interface of
this machine uses yet) in the test's namespace, and per host a namespace joined to it
by a veth pair, at ``10.77.N.11``, ``.12`` ... A process started with ``Host.popen``
sees only its namespace's ``lo`` and that link: the servers the test binds to the
bridge address are the only ones it can reach. Needs root (CI runs as root) and
iproute2; ``need`` skips without them, and fails under ``CI=true``.

``TcpForwarder`` carries connections from the bridge address to a loopback server (the
machine's Postgres, which listens on 127.0.0.1 only and is unreachable from a namespace).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import need


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _used_subnets() -> set[int]:
    out = _ip("-4", "-o", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("10.77.") and "/" in word:
                used.add(int(word.split(".")[2]))
    return used


@dataclass
class Host:
    name: str       # the namespace
    address: str    # its address on the bridge

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """``argv`` inside this host's namespace (``ip netns exec`` execs it: same pid)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], **kwargs)


class Network:
    def __init__(self) -> None:
        need(shutil.which("ip") is not None, "iproute2 (`ip`) is not installed")
        need(os.geteuid() == 0, "network namespaces need root")
        self.tag = secrets.token_hex(2)
        self.bridge = f"ttbr{self.tag}"
        free = [n for n in range(10, 250) if n not in _used_subnets()]
        need(bool(free), "no free 10.77.N.0/24 subnet for the test network")
        self.subnet = free[secrets.randbelow(len(free))]
        self.gateway = f"10.77.{self.subnet}.1"
        self.hosts: list[Host] = []
        probe = _ip("link", "add", self.bridge, "type", "bridge", check=False)
        need(probe.returncode == 0, f"cannot create a bridge ({probe.stderr.strip()})")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, label: str) -> Host:
        n = len(self.hosts)
        name, outer, inner = f"tt-{self.tag}-{label}", f"tth{self.tag}{n}", f"ttn{self.tag}{n}"
        made = _ip("netns", "add", name, check=False)
        need(made.returncode == 0, f"cannot create a network namespace ({made.stderr.strip()})")
        address = f"10.77.{self.subnet}.{11 + n}"
        host = Host(name, address)
        self.hosts.append(host)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", inner)
        _ip("-n", name, "link", "set", inner, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        for host in self.hosts:
            _ip("netns", "del", host.name, check=False)  # takes its end of the veth pair, and so the pair
        _ip("link", "del", self.bridge, check=False)


class TcpForwarder:
    """Accept on ``listen`` (host, port 0: any free one) and relay each connection to ``target``."""

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((listen_host, 0))
        self.host, self.port = self.server.getsockname()[:2]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._closed = True
        self.server.close()
