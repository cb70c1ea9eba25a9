"""The README's Configuration section and `.env.example` list every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from botplatform.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _env_names() -> list[str]:
    names = []
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names.append(str(field.validation_alias.choices[0]))
        elif field.alias:
            names.append(field.alias)
    return names


@pytest.mark.parametrize("name", _env_names())
def test_setting_is_documented(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    configuration = readme.split("## Configuration", 1)[1]
    assert f"`{name}`" in configuration
    assert f"\n{name}=" in (ROOT / ".env.example").read_text()


def test_readme_opens_with_run_and_test() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].startswith("make run")
    assert block[1].startswith("make test")


# --- .env.example: every setting with its default and its meaning ----------------------------

ENV_EXAMPLE = ROOT / ".env.example"
_ENTRY = re.compile(r"^([A-Z][A-Z0-9_]*)=")
# Read by docker-compose.yml, not by the platform.
COMPOSE_ONLY = {
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_APP_USER",
    "POSTGRES_APP_PASSWORD",
    "BOTPLATFORM_IMAGE",
    "HTTP_PORT",
}


def _example_entries() -> list[tuple[str, str, str]]:
    """(name, line, the line before) of every assignment in .env.example."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    return [
        (match.group(1), line, lines[index - 1] if index else "")
        for index, line in enumerate(lines)
        if (match := _ENTRY.match(line))
    ]


def test_env_example_lists_each_setting_once_and_nothing_else() -> None:
    names = [name for name, _, _ in _example_entries()]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) == set(_env_names()) | COMPOSE_ONLY
    compose = (ROOT / "docker-compose.yml").read_text()
    assert all(f"${{{name}" in compose for name in COMPOSE_ONLY)


def test_env_example_gives_each_setting_its_meaning() -> None:
    for name, line, before in _example_entries():
        inline = " # " in line.split("=", 1)[1]
        above = before.startswith("# ") and not before.startswith("# ---")
        assert inline or above, f"{name}: say what it means (a comment on its line or above it)"


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded as a `.env`, the file changes nothing: each value written is the default."""
    for name in _env_names():
        monkeypatch.delenv(name, raising=False)
    from_file = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for field in Settings.model_fields:
        assert getattr(from_file, field) == getattr(defaults, field), field
