"""Scenario (a)'s load generator: Debian's `wrk` (C, one thread) with pre-built, pre-signed
webhooks fed by `bench/wrk_post.lua`, so the generator takes a small share of the two cores
that the server under test shares with it. Its CPU is measured (as a child process) and
reported apart from the server's."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import signed_request, text_for, wa_id_for
from servers import BENCH_DIR

SCRIPT = BENCH_DIR / "wrk_post.lua"
TIME_LIMIT = "120s"  # wrk stops by itself after this, whatever happens


def available() -> bool:
    return shutil.which("wrk") is not None


def write_bodies(path: Path, prefix: str, count: int) -> None:
    """`count` unique signed webhooks, one a line: "sha256<TAB>sha1<TAB>body"."""
    lines = []
    for seq in range(count):
        body, headers = signed_request(wa_id_for(prefix, seq), text_for(seq))
        sha256, sha1 = headers["X-Hub-Signature-256"], headers["X-Hub-Signature"]
        lines.append(f"{sha256}\t{sha1}\t{body.decode()}")
    path.write_text("\n".join(lines) + "\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ClosedLoop:
    """One closed-loop run: `prepare()` builds and signs the bodies (before any clock),
    `run()` sends the warm-up and then the measured requests."""

    def __init__(self, scratch: Path, url: str, prefix: str, concurrency: int) -> None:
        self.scratch, self.url, self.prefix, self.concurrency = scratch, url, prefix, concurrency

    def prepare(self, warmup: int, requests: int) -> None:
        # Spares past the stop: requests still in flight when wrk stops are new bodies too.
        self.warmup, self.requests = warmup, requests
        write_bodies(self._file("warmup"), f"{self.prefix}00", warmup + self.concurrency)
        write_bodies(self._file("measured"), f"{self.prefix}01", requests + self.concurrency)

    def _file(self, name: str) -> Path:
        return self.scratch / f"wrk-{self.prefix}-{name}.tsv"

    def _wrk(self, name: str, stop_after: int) -> dict[str, Any]:
        host = urlsplit(self.url).netloc
        argv = [
            *("wrk", "-t1", "-c", str(self.concurrency), "-d", TIME_LIMIT, "--timeout", "30s"),
            *("-s", str(SCRIPT), self.url, "--", str(self._file(name)), str(stop_after), host),
        ]
        with subprocess.Popen(  # noqa: S603 - Debian's wrk, our script
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            assert process.stderr is not None
            assert process.stdout is not None
            errors = []
            for line in process.stderr:  # ends when wrk exits (after at most TIME_LIMIT)
                if line.strip() == "stopped":
                    process.send_signal(signal.SIGINT)
                else:
                    errors.append(line)
            stdout = process.stdout.read()
            returncode = process.wait(timeout=60)
        found = next((x for x in stdout.splitlines() if x.startswith("{")), None)
        if returncode != 0 or found is None:
            raise RuntimeError(f"wrk failed ({returncode}): {stdout}{''.join(errors)}")
        return dict(json.loads(found))

    def run(self) -> dict[str, Any]:
        cpu_before = _children_cpu()
        self._wrk("warmup", self.warmup)
        out = self._wrk("measured", self.requests)
        elapsed = out["duration_us"] / 1e6
        answered, ok = int(out["answered"]), int(out["ok"])
        return {
            "generator": "wrk",
            "requests": answered,
            "ok": ok,
            "errors": answered - ok + sum(v for k, v in out["errors"].items() if k != "status"),
            "error_detail": out["errors"],
            "elapsed_s": round(elapsed, 3),
            "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(out["p50_us"] / 1000, 2),
            "p99_ms": round(out["p99_us"] / 1000, 2),
            "max_ms": round(out["max_us"] / 1000, 2),
            "truncated": answered < self.requests,
            # Sent beyond the counted answers (in flight when wrk stopped): stored too.
            "generator_cpu_s": round(_children_cpu() - cpu_before, 3),
        }
