"""Where the workers' CPU goes during (b): py-spy samples one worker process (`botplatform
worker` spawns identical children; sampling all of them cost a third of a core) without
pausing it (`--nonblocking`), only the thread holding the GIL (`--gil`: the Python work of a
process whose threads share one interpreter; a thread blocked in a socket read or a
`Condition.wait` has released it), and this module groups the samples by component.

A sample's *own* frame is its innermost one; its *component* is the innermost frame that
belongs to a package we can name (SQLAlchemy, asyncpg, dramatiq/redis, httpx, our code), so
that `re.match` called by SQLAlchemy counts as SQLAlchemy. The raw stacks stay in the run's
scratch directory.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from servers import Proc

PY_SPY = str(Path(sys.executable).parent / "py-spy")
TOP = 25
# (component, substring of a frame's file path), the first match wins.
COMPONENTS = (
    ("SQLAlchemy", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("dramatiq/redis", "/dramatiq/"),
    ("dramatiq/redis", "/redis/"),
    ("httpx", "/httpx/"),
    ("httpx", "/httpcore/"),
    ("httpx", "/h11/"),
    ("httpx", "/anyio/"),
    ("our code", "/botplatform/"),
    ("pydantic", "/pydantic"),
)
FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def first_worker(pid: int) -> int:
    """The first worker process `pid` spawned (multiprocessing also starts a resource
    tracker, idle, before them), or `pid` itself when it runs the worker in-process."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    for child in sorted(children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            return child
    return pid


class Sampler:
    """py-spy recording `pid` into `output` (raw collapsed stacks) while the `with` block
    runs; SIGINT makes it write the file and exit."""

    def __init__(self, pid: int, output: Path, rate: int) -> None:
        argv = [
            *(PY_SPY, "record", "--pid", str(pid), "--nonblocking", "--gil"),
            *("--rate", str(rate), "--format", "raw", "--output", str(output)),
        ]
        log_path = output.with_suffix(".log")
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - py-spy from the bench's environment
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.proc = Proc("py-spy", process, log_path)

    def __enter__(self) -> Sampler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.proc.process.send_signal(signal.SIGINT)
        try:
            self.proc.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.process.kill()
            self.proc.process.wait(timeout=10)


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) of each frame, outermost first; py-spy's own labels dropped."""
    frames = []
    for text in stack.split(";"):
        match = FRAME.match(text)
        if match is not None:
            frames.append((match["function"], match["path"]))
    return frames


def component_of(path: str) -> str:
    # py-spy writes site-packages and our source as relative paths ("sqlalchemy/orm/...").
    rooted = "/" + path
    for name, marker in COMPONENTS:
        if marker in rooted:
            return name
    return ""


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def summarise(raw: Path) -> dict[str, Any]:
    """Components (each sample once) and the top functions by own samples."""
    components: Counter[str] = Counter()
    own: Counter[tuple[str, str, str]] = Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0, "components": {}, "top": []}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit() or not (frames := _frames(stack)):
            continue
        count = int(count_text)
        total += count
        named = next((c for _, path in reversed(frames) if (c := component_of(path))), "")
        component = named or "Python runtime, stdlib, other"
        components[component] += count
        function, path = frames[-1]
        own[(function, _short(path), component)] += count
    return {
        "samples": total,
        "components": dict(components.most_common()),
        "top": [
            {"function": f, "file": p, "component": c, "samples": n}
            for (f, p, c), n in own.most_common(TOP)
        ],
    }
