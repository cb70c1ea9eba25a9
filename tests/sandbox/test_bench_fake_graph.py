"""The benchmark's own pieces that decide whether its figures mean anything:

- its fake Graph API accepts a send the way the platform and pywa make it (when the sandbox's
  `accept` gained a parameter, the bench's override broke every send with a 500, and pywa's
  echo "sustained" nothing), and reads its arrivals only on the event loop that writes them
  (read from a worker thread, the dict changed size mid-iteration: a sporadic 500);
- the report never calls a target met against a reference that did no work;
- the SQL relay counts round trips the way the protocol defines them.
"""

from __future__ import annotations

import struct
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    """One of the bench's own modules (bench/ is scripts, not a package)."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH_DIR))


class LoopOnlyDict(dict[str, Any]):
    """Arrivals that fail when read or written off the thread running the event loop."""

    def __init__(self, loop_thread: threading.Thread) -> None:
        super().__init__()
        self.loop_thread = loop_thread

    def _check(self) -> None:
        assert threading.current_thread() is self.loop_thread, "arrivals used off the loop"

    def get(self, *args: Any) -> Any:
        self._check()
        return super().get(*args)

    def setdefault(self, *args: Any) -> Any:
        self._check()
        return super().setdefault(*args)


@pytest.fixture
def graph_app() -> Any:
    fake_graph = bench_module("fake_graph")
    app = fake_graph.create_bench_app()
    app.state.graph.arrivals = LoopOnlyDict(threading.current_thread())
    return app


async def test_a_reply_is_accepted_and_its_arrival_read_on_the_loop(graph_app: Any) -> None:
    common = bench_module("common")
    customer = common.wa_id_for("10101", 7)
    transport = httpx.ASGITransport(app=graph_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://graph") as client:
        for _ in range(2):  # a second reply to one customer is recorded as such
            sent = await client.post(
                f"/v21.0/{common.PHONE_NUMBER_ID}/messages",
                json={
                    "messaging_product": "whatsapp",
                    "to": customer,
                    "type": "text",
                    "text": {"body": "Thanks"},
                },
                headers={"Authorization": f"Bearer {common.ACCESS_TOKEN}"},
            )
            assert sent.status_code == 200, sent.text
        arrivals = await client.get("/_bench/arrivals", params={"prefix": "10101"})
        other_step = await client.get("/_bench/arrivals", params={"prefix": "10102"})
    assert arrivals.status_code == 200
    times = arrivals.json()[customer]
    assert len(times) == 2 and times[0] <= times[1]
    assert other_step.json() == {}


def _results(*, pywa_replies: int) -> dict[str, Any]:
    """A minimal run: pywa's echo answered `pywa_replies` times; the platform replied."""

    def step(rate: float, replies: int, passed: bool) -> dict[str, Any]:
        return {"offered_rps": rate, "requests": 300, "replies": replies, "passed": passed}

    pywa_steps = [step(25, pywa_replies, bool(pywa_replies))]
    cpu = {"wall": 10.0, "other processes": 0.0}
    return {
        "settings": {"warmup": 300},
        "pywa": {
            "inbound": {"requests": 5000, "ok": 5000, "cpu": cpu | {"pywa": 1.0}},
            "end_to_end": {
                "warmup": step(20, pywa_replies, bool(pywa_replies)),
                "steps": pywa_steps,
                "best": pywa_steps[0] if pywa_replies else None,
                "cpu": cpu | {"pywa": 1.2},
            },
        },
        "postgres": {
            "inbound": {
                "requests": 5000,
                "ok": 5000,
                "durable": True,
                "cpu": cpu | {"platform serve": 1.0},
                "processing": {"drain_s": 1.0, "events": 5300, "cpu": cpu},
            },
            "end_to_end": {
                "warmup": step(20, 60, True),
                "steps": [step(25, 300, True), step(30, 250, False)],
                "best": step(25, 300, True),
                "cpu": cpu | {"platform serve": 0.5, "platform worker": 5.0},
                "sql": {"round_trips": 4000, "statements": {}},
            },
        },
    }


def test_a_reference_that_sent_nothing_judges_nothing() -> None:
    figures = bench_module("figures")
    judged = {t.name: t.verdict for t in figures.targets(_results(pywa_replies=0))}
    for name in (
        "(b) CPU per auto-replied message",
        "(b) sustained rate, e2e p99 < SLO",
    ):
        assert judged[name] == "no reference"
    assert "met" not in {v for k, v in judged.items() if k.startswith("(b) CPU")}


def test_targets_are_ratios_to_the_reference_of_the_same_run() -> None:
    figures = bench_module("figures")
    judged = {t.name: t for t in figures.targets(_results(pywa_replies=300))}
    # 5.5 s of platform CPU over 900 messages against pywa's 1.2 s over 600.
    cpu_b = judged["(b) CPU per auto-replied message"]
    assert cpu_b.verdict == "missed"
    assert cpu_b.ratio == pytest.approx((5.5 / 900) / (1.2 / 600))
    assert judged["(b) sustained rate, e2e p99 < SLO"].verdict == "met"
    trips = judged["(b) SQL round trips per auto-replied message"]
    assert trips.measured == "4.4" and trips.verdict == "met"


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def test_the_relay_counts_queries_and_syncs_as_round_trips() -> None:
    pgcount = bench_module("pgcount")
    pgcount.COUNTS = pgcount.Counts()
    stream = pgcount.ClientStream()
    startup = struct.pack("!ii", 8, 80877103)  # SSLRequest, then the StartupMessage
    startup += struct.pack("!ii", 9, 196608) + b"\x00"
    parse = _message(b"P", b"s1\x00INSERT INTO t VALUES ($1)\x00\x00\x00")
    bind = _message(b"B", b"\x00s1\x00" + b"\x00" * 6)
    execute = _message(b"E", b"\x00\x00\x00\x00\x00")
    sync = _message(b"S", b"")
    data = startup + _message(b"Q", b"BEGIN\x00") + parse + sync
    data += (bind + execute) * 50 + sync + _message(b"Q", b"COMMIT\x00")
    for start in range(0, len(data), 7):  # split anywhere, as TCP may
        stream.feed(data[start : start + 7])
    counts = pgcount.COUNTS.as_dict()
    assert counts["round_trips"] == 4  # BEGIN, prepare, one executemany, COMMIT
    assert counts["statements"] == {"BEGIN": 1, "INSERT": 50, "COMMIT": 1}
