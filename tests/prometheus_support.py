"""A real Prometheus server (Debian's ``prometheus``) for tests: it scrapes a target every 2 s,
evaluates ``infra/prometheus/rules.yml``, and answers queries through its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.conftest import need
from tests.pipeline_support import ROOT, free_port

RULES = ROOT / "infra" / "prometheus" / "rules.yml"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    need(found is not None, "the prometheus server is not installed (apt-get install prometheus)")
    return found


class Prometheus:
    """``with Prometheus(folder, "127.0.0.1:9808") as prom: prom.query("tt_backlog_videos")``."""

    def __init__(self, folder: Path, target: str, job: str = "tiktok-tracker") -> None:
        self.folder, self.target, self.job = folder, target, job
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Prometheus:
        binary = prometheus_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(RULES, self.folder / "rules.yml")
        (self.folder / "prometheus.yml").write_text(
            "global: {scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 1s}\n"
            "rule_files: [rules.yml]\n"
            f"scrape_configs:\n  - job_name: {self.job}\n    static_configs: [{{targets: ['{self.target}']}}]\n"
        )
        self.log = open(self.folder / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.folder / 'prometheus.yml'}", f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{(self.folder / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[tuple, float]:
        """An instant query's vector: {(label, value) pairs without __name__: value}."""
        data = self.api("query", query=expr)
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1]) for r in data["result"]}

    def value(self, expr: str) -> float | None:
        """The single value of a query that yields at most one series (None: none)."""
        found = self.query(expr)
        assert len(found) <= 1, found
        return next(iter(found.values()), None)

    def scraped(self) -> bool:
        """Whether the target has been scraped and is up."""
        return any(t["health"] == "up" for t in self.api("targets")["activeTargets"])
