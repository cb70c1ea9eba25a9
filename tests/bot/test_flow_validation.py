"""Validation on save: every problem at once, each pointing at its node, edge or trigger."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from botplatform.bot.flow import validate
from botplatform.bot.nodes import NODE_TYPES
from tests.bot.flows import edge, support_flow


def _issues(flow: dict[str, Any]) -> list[dict[str, Any]]:
    return [issue.as_dict() for issue in validate(flow)]


def test_a_good_flow_and_an_empty_one_are_valid() -> None:
    assert validate(support_flow()) == []
    assert validate({}) == []


def test_unknown_node_type_names_the_node() -> None:
    flow = support_flow()
    flow["nodes"][3]["type"] = "send_fax"
    (issue,) = _issues(flow)
    assert issue["code"] == "unknown_node_type"
    assert (issue["node"], issue["field"]) == ("bye", "type")
    assert "send_fax" in issue["message"]


def test_dangling_edge_names_the_edge_and_its_end() -> None:
    flow = support_flow()
    flow["edges"].append({"id": "e-oops", "from": "bye", "to": "nowhere"})
    issues = _issues(flow)
    dangling = [i for i in issues if i["code"] == "dangling_edge"]
    assert dangling == [
        {
            "code": "dangling_edge",
            "message": "the edge's `to` names node 'nowhere', which does not exist",
            "edge": "e-oops",
            "field": "to",
        }
    ]
    flow = support_flow()
    flow["edges"].append(edge("ghost", "bye"))
    (issue,) = _issues(flow)
    assert (issue["code"], issue["edge"], issue["field"]) == ("dangling_edge", 4, "from")


def test_unreachable_node_is_named() -> None:
    flow = support_flow()
    flow["nodes"].append({"id": "orphan", "type": "send_text", "text": "nobody comes here"})
    (issue,) = _issues(flow)
    assert (issue["code"], issue["node"]) == ("unreachable_node", "orphan")


def test_missing_required_field_names_node_and_field() -> None:
    flow = support_flow()
    del flow["nodes"][1]["attribute"]
    (issue,) = _issues(flow)
    assert issue == {
        "code": "missing_field",
        "message": "node 'ask_email' needs `attribute`",
        "node": "ask_email",
        "field": "attribute",
    }


def test_port_problems() -> None:
    flow = support_flow()
    flow["edges"].append(edge("to_agent", "bye"))  # handoff ends the run: no ports
    flow["edges"].append(edge("menu", "bye", "sales"))  # sales already leads somewhere
    flow["edges"].append(edge("ask_email", "bye", "maybe"))
    codes = [(i["code"], i.get("edge")) for i in _issues(flow)]
    assert codes == [("unknown_port", 4), ("duplicate_edge", 5), ("unknown_port", 6)]


def test_field_checks_reuse_the_send_limits() -> None:
    flow = support_flow()
    menu = flow["nodes"][0]
    menu["buttons"] = [{"id": f"b{i}", "title": f"B{i}"} for i in range(4)]  # at most 3
    flow["nodes"][1]["validation"] = "zodiac"
    issues = _issues(flow)
    assert {(i["code"], i["node"], i.get("field", "").split(".")[0]) for i in issues} >= {
        ("invalid_field", "menu", "buttons"),
        ("invalid_field", "ask_email", "validation"),
    }


def test_every_node_type_checks_its_fields() -> None:
    bad_nodes = [
        {"id": "a", "type": "send_media", "media_type": "hologram", "url": "https://x"},
        {"id": "b", "type": "send_media", "media_type": "image", "url": "http://plain"},
        {"id": "c", "type": "send_list", "text": "t", "button": "b", "sections": [{"rows": []}]},
        {"id": "d", "type": "send_template", "name": "n", "language": "x"},
        {"id": "e", "type": "condition", "rules": [{"kind": "weather"}]},
        {"id": "f", "type": "condition", "rules": [{"kind": "time_of_day", "from": "25:00"}]},
        {"id": "g", "type": "set_variable", "name": "9lives", "value": 1},
        {"id": "h", "type": "http_request", "url": "ftp://x", "timeout_seconds": 99},
        {"id": "i", "type": "ai_answer", "save_as": "no spaces"},
        {"id": "j", "type": "delay", "seconds": 0},
        {"id": "k", "type": "ask", "question": "q", "attribute": "c", "validation": "choice"},
        {"id": "l", "type": "end", "message": ""},
        {"id": "m", "type": "send_text", "text": "t", "colour": "red"},
    ]
    flow = {
        "triggers": [{"type": "any_message", "node": n["id"]} for n in bad_nodes],
        "nodes": bad_nodes,
        "edges": [],
    }
    flagged = {i["node"] for i in _issues(flow)}
    assert flagged == {n["id"] for n in bad_nodes}
    (issue,) = [i for i in _issues(flow) if i["node"] == "m"]
    assert (issue["code"], issue["field"]) == ("unknown_field", "colour")


def test_trigger_problems_name_the_trigger() -> None:
    flow = support_flow()
    flow["triggers"] += [
        {"type": "regex", "pattern": "(unclosed", "node": "menu"},
        {"type": "telepathy", "node": "menu"},
        {"type": "payload", "node": "menu"},
        {"type": "keyword", "keywords": ["x"], "node": "missing"},
        {"type": "intent", "intent": "buy", "min_confidence": 3, "node": "menu"},
    ]
    issues = _issues(flow)
    assert [(i["code"], i["trigger"]) for i in issues] == [
        ("invalid_field", 1),
        ("unknown_trigger_type", 2),
        ("missing_field", 3),
        ("dangling_trigger", 4),
        ("invalid_field", 5),
    ]


def test_duplicates_and_shapes() -> None:
    flow = copy.deepcopy(support_flow())
    flow["nodes"].append(dict(flow["nodes"][0]))
    assert [i["code"] for i in _issues(flow)] == ["duplicate_node_id"]
    assert _issues([])[0]["code"] == "invalid_flow"
    assert _issues({"nodes": {}})[0]["code"] == "invalid_flow"
    assert _issues({"nodes": [{"id": "x"}] * 301})[0]["code"] == "too_large"
    assert _issues({"wat": 1})[0] == {
        "code": "unknown_field",
        "message": "a flow has no `wat`",
        "field": "wat",
    }


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_node_like = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c"]), "type": st.sampled_from([*NODE_TYPES, "x"])},
    optional=dict.fromkeys(
        ("text", "buttons", "sections", "rules", "url", "seconds", "choices", "save"), _json
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    nodes=st.lists(_node_like, max_size=4),
    edges=st.lists(
        st.fixed_dictionaries(
            {"from": st.sampled_from(["a", "b", "zz"]), "to": _json}, optional={"port": _json}
        ),
        max_size=4,
    ),
    triggers=st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["keyword", "regex", "intent", "payload", "?"])},
            optional={"node": _json, "keywords": _json, "pattern": _json, "priority": _json},
        ),
        max_size=3,
    ),
    anything=_json,
)
def test_validation_never_crashes(
    nodes: list[Any], edges: list[Any], triggers: list[Any], anything: Any
) -> None:
    for flow in ({"nodes": nodes, "edges": edges, "triggers": triggers}, anything):
        issues = validate(flow)
        assert all(issue.code and issue.message for issue in issues)
