"""The README's Configuration section and `.env.example` list every setting."""

from __future__ import annotations

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
