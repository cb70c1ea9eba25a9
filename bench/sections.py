"""Sections of docs/benchmarks.md kept apart from the main run's: `bench/scaleout.py` writes
its own section, and the broadcast (e) and webchat (f) scenarios theirs between
`<!-- NAME:start -->` and `<!-- NAME:end -->` markers; `bench/run.py` keeps them when it
rewrites the file."""

from __future__ import annotations

from pathlib import Path

SCALEOUT_HEADING = "## Scale-out on loopback"
#: Written by hand from `bench/analytics.py` (issue 19); a full run keeps it as it is.
ANALYTICS_HEADING = "## Analytics: 90-day reports over 1M messages (PostgreSQL, issue 19)"


def section_of(path: Path, heading: str) -> str:
    """The section under `heading` (up to the next `## `), or ''."""
    text = path.read_text() if path.exists() else ""
    start = text.find(f"\n{heading}\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    return text[start + 1 : end + 1 if end >= 0 else len(text)].rstrip("\n") + "\n"


def replace_section(path: Path, heading: str, section: str) -> None:
    """Writes `section` (starting with `heading`) in place of the old one, or at the end."""
    text = path.read_text() if path.exists() else ""
    old = section_of(path, heading)
    body = section.rstrip("\n") + "\n"
    text = text.replace(old, body) if old else text.rstrip("\n") + "\n\n" + body
    path.write_text(text)


def marked_block(text: str, name: str) -> str:
    """The block between `<!-- name:start -->` and `<!-- name:end -->` in `text` (markers
    included, with a final newline), or ''."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(end_marker)] + "\n"


def without_markers(section: str) -> str:
    """`section` cut before any `<!-- …:start -->` line (the next block's, caught by a `## `
    section that runs up to the next heading)."""
    for index, line in enumerate(section.splitlines(keepends=True)):
        if line.startswith("<!-- ") and line.rstrip().endswith(":start -->"):
            return "".join(section.splitlines(keepends=True)[:index]).rstrip("\n") + "\n"
    return section
