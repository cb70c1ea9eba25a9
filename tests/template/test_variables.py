"""A template's variables without I/O: counts, types, header media, named parameters, the
Graph API components of a send, and the preview text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from botplatform.template.schemas import TemplateCreate
from botplatform.template.variables import (
    build_components,
    example_params,
    params_from_components,
    render,
    validate_variables,
)

ORDER: list[dict[str, Any]] = [
    {
        "type": "HEADER",
        "format": "TEXT",
        "text": "Order {{1}}",
        "example": {"header_text": ["#42"]},
    },
    {
        "type": "BODY",
        "text": "Hi {{1}}, your order of {{2}} ships on {{3}}.",
        "example": {"body_text": [["Ada", "$10.00", "Monday"]]},
    },
    {"type": "FOOTER", "text": "Reply STOP to opt out"},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "QUICK_REPLY", "text": "Thanks"},
            {
                "type": "URL",
                "text": "Track",
                "url": "https://shop.example/track/{{1}}",
                "example": ["https://shop.example/track/42"],
            },
            {"type": "COPY_CODE", "example": "SAVE10"},
        ],
    },
]
IMAGE_HEADER: list[dict[str, Any]] = [
    {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2U="]}},
    {"type": "BODY", "text": "A photo for you, {{1}}!", "example": {"body_text": [["Ada"]]}},
]
NAMED: list[dict[str, Any]] = [
    {
        "type": "BODY",
        "text": "Thank you, {{customer_name}}! Order {{order_number}} is confirmed.",
        "example": {
            "body_text_named_params": [
                {"param_name": "customer_name", "example": "Pablo"},
                {"param_name": "order_number", "example": "860198"},
            ]
        },
    }
]
CURRENCY = {"type": "currency", "fallback_value": "$10.00", "code": "USD", "amount_1000": 10000}
DATE = {"type": "date_time", "date_time": {"fallback_value": "Monday, May 4"}}
GOOD: dict[str, Any] = {
    "header": ["#42"],
    "body": ["Ada", CURRENCY, DATE],
    "buttons": {"1": ["42"], "2": ["SAVE10"]},
}


def test_values_that_fit_have_no_errors_and_become_graph_components() -> None:
    assert validate_variables(ORDER, GOOD) == []
    components = build_components(ORDER, GOOD)
    assert components == [
        {"type": "header", "parameters": [{"type": "text", "text": "#42"}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Ada"},
                {
                    "type": "currency",
                    "currency": {"fallback_value": "$10.00", "code": "USD", "amount_1000": 10000},
                },
                {"type": "date_time", "date_time": {"fallback_value": "Monday, May 4"}},
            ],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "1",
            "parameters": [{"type": "text", "text": "42"}],
        },
        {
            "type": "button",
            "sub_type": "copy_code",
            "index": "2",
            "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}],
        },
    ]
    # A send's components read back give the same values, and they fit too.
    assert validate_variables(ORDER, params_from_components(components)) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({**GOOD, "body": ["Ada", "x"]}, "body: expected 3 value(s), got 2"),
        ({**GOOD, "body": ["Ada", "x", "y", "z"]}, "body: expected 3 value(s), got 4"),
        ({**GOOD, "header": []}, "header: expected 1 value(s), got 0"),
        (
            {**GOOD, "body": ["Ada", CURRENCY, {"type": "image", "link": "https://a/b.png"}]},
            "body[2]: expected a value of type text or currency or date_time, got 'image'",
        ),
        ({**GOOD, "body": ["", CURRENCY, DATE]}, "body[0]: a text value must not be empty"),
        (
            {**GOOD, "body": ["line\nbreak", CURRENCY, DATE]},
            "body[0]: no new lines, tabs or more than 4 spaces in a row",
        ),
        (
            {**GOOD, "body": ["Ada", {"type": "currency", "fallback_value": "$1"}, DATE]},
            "body[1]: a currency needs `code` (ISO 4217) and an integer `amount_1000`",
        ),
        ({**GOOD, "buttons": {"2": ["SAVE10"]}}, "buttons[1]: expected 1 value(s), got 0"),
        (
            {**GOOD, "buttons": {**GOOD["buttons"], "0": ["x"]}},
            "buttons[0]: that button takes no value",
        ),
        ({**GOOD, "footer": ["x"]}, "footer: not a part of a template (header, body, buttons)"),
    ],
)
def test_values_that_do_not_fit_say_why(params: dict[str, Any], expected: str) -> None:
    assert expected in validate_variables(ORDER, params)


def test_a_media_header_needs_its_media() -> None:
    assert validate_variables(IMAGE_HEADER, {"body": ["Ada"]}) == [
        "header: this template's header needs a image"
    ]
    wrong = {"header": [{"type": "video", "link": "https://cdn.example/v.mp4"}], "body": ["Ada"]}
    assert validate_variables(IMAGE_HEADER, wrong) == [
        "header: expected a value of type image, got 'video'"
    ]
    no_link = {"header": [{"type": "image", "link": "http://insecure/p.png"}], "body": ["Ada"]}
    assert validate_variables(IMAGE_HEADER, no_link) == [
        "header: a image needs an https `link` or a media `id`"
    ]
    good = {"header": [{"type": "image", "link": "https://cdn.example/p.png"}], "body": ["Ada"]}
    assert validate_variables(IMAGE_HEADER, good) == []
    assert build_components(IMAGE_HEADER, good)[0] == {
        "type": "header",
        "parameters": [{"type": "image", "image": {"link": "https://cdn.example/p.png"}}],
    }


def test_named_parameters_by_name() -> None:
    good = {"body": {"customer_name": "Ada", "order_number": "77"}}
    assert validate_variables(NAMED, good) == []
    assert build_components(NAMED, good, named=True) == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Ada", "parameter_name": "customer_name"},
                {"type": "text", "text": "77", "parameter_name": "order_number"},
            ],
        }
    ]
    assert validate_variables(NAMED, {"body": {"customer_name": "Ada", "order": "1"}}) == [
        "body: missing value for order_number",
        "body: order is not a variable of this template",
    ]


def test_preview_renders_examples_by_default_and_given_values() -> None:
    assert render(ORDER, example_params(ORDER)) == {
        "header": "Order #42",
        "body": "Hi Ada, your order of $10.00 ships on Monday.",
        "footer": "Reply STOP to opt out",
        "buttons": [
            {"type": "QUICK_REPLY", "text": "Thanks"},
            {"type": "URL", "text": "Track", "url": "https://shop.example/track/42"},
            {"type": "COPY_CODE", "text": None},
        ],
    }
    assert example_params(ORDER)["buttons"] == {"1": ["42"], "2": ["SAVE10"]}
    assert validate_variables(ORDER, example_params(ORDER)) == []
    shown = render(ORDER, GOOD)
    assert shown["body"] == "Hi Ada, your order of $10.00 ships on Monday, May 4."
    assert shown["buttons"][1]["url"] == "https://shop.example/track/42"
    # A value not given leaves its placeholder visible.
    assert render(ORDER, {"body": ["Ada"]})["body"] == "Hi Ada, your order of {{2}} ships on {{3}}."
    assert render(NAMED, example_params(NAMED))["body"] == (
        "Thank you, Pablo! Order 860198 is confirmed."
    )


def _create(**overrides: Any) -> TemplateCreate:
    body = {
        "channel_id": "00000000-0000-0000-0000-000000000001",
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": ORDER,
        **overrides,
    }
    return TemplateCreate.model_validate(body)


def test_a_new_template_is_checked_like_meta_does() -> None:
    assert _create().parameter_format == "POSITIONAL"
    assert _create(components=NAMED).parameter_format == "NAMED"
    cases = {
        "a template has exactly one BODY": [ORDER[0]],
        "body: variables must be numbered {{1}} to {{2}}": [
            {"type": "BODY", "text": "Hi {{1}} and {{3}}", "example": {"body_text": [["a", "b"]]}}
        ],
        "body: example.body_text must give 2 value(s)": [
            {"type": "BODY", "text": "Hi {{1}} and {{2}}", "example": {"body_text": [["a"]]}}
        ],
        "a IMAGE header needs example.header_handle": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hello"},
        ],
        "a URL with a variable needs an `example` URL": [
            {"type": "BODY", "text": "Hello"},
            {
                "type": "BUTTONS",
                "buttons": [{"type": "URL", "text": "Go", "url": "https://x.example/{{1}}"}],
            },
        ],
    }
    for message, components in cases.items():
        with pytest.raises(ValidationError, match=re.escape(message)):
            _create(components=components)
    with pytest.raises(ValidationError):
        _create(name="Has Spaces")
