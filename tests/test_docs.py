"""The developer documentation stays in step with the code it describes.

- docs/settings.md lists every key of ``loyalty.conf.DEFAULTS`` in its table, with its default.
- Every relative link in docs/*.md and README.md points to a file that exists (links to
  ``https://...`` and ``mailto:`` are not checked), and an ``#anchor`` in a link to a Markdown
  file names one of its headings, as GitHub makes anchors of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loyalty.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SETTINGS_DOC = DOCS / "settings.md"
MARKDOWN_FILES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# [text](target) or [text](target "title"); the target ends at whitespace or ")".
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines outside fenced code blocks, with their numbers, inline code removed."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"`[^`]*`", "", line)))
    return lines


def _expected_default(value) -> str:
    """How settings.md writes a default: ``None``, ``"inline"``, ``500``, ``True``."""
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _settings_rows() -> dict[str, list[str]]:
    """The rows of settings.md's tables whose first cell is a `KEY`: key -> its cells."""
    rows = {}
    for line in SETTINGS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and (match := re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[0])):
            rows.setdefault(match.group(1), cells)
    return rows


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_settings_doc_lists_every_key_with_its_default(key):
    text = SETTINGS_DOC.read_text(encoding="utf-8")
    assert f"`{key}`" in text, f"docs/settings.md does not mention `{key}` (loyalty.conf.DEFAULTS)"
    row = _settings_rows().get(key)
    assert row is not None, f"docs/settings.md has no table row | `{key}` | default | meaning |"
    expected = _expected_default(DEFAULTS[key])
    if isinstance(DEFAULTS[key], (str, int, float, bool, type(None))):
        # 250_000 is written 250000, as Python prints it.
        assert row[1] == expected, f"docs/settings.md gives `{key}` the default {row[1]}, the code {expected}"


def test_settings_doc_lists_no_unknown_key():
    unknown = sorted(set(_settings_rows()) - set(DEFAULTS))
    assert not unknown, f"docs/settings.md documents keys loyalty does not know: {unknown}"


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(path):
    broken = []
    for number, line in _prose_lines(path):
        for target in LINK.findall(line):
            if EXTERNAL.match(target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0].split("?", 1)[0]
            if not (path.parent / file_part).exists():
                broken.append(f"{path.relative_to(ROOT)}:{number}: ({target})")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of the file's headings: lower case, punctuation dropped, spaces to "-"."""
    anchors, seen = set(), {}
    for _, line in _prose_lines_keeping_code(path):
        if match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _prose_lines_keeping_code(path: Path) -> list[tuple[int, str]]:
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_anchors_point_to_existing_headings(path):
    """``file.md#heading`` and ``#heading``: the heading exists (for links to existing .md files)."""
    broken = []
    for number, line in _prose_lines(path):
        for target in LINK.findall(line):
            if EXTERNAL.match(target) or "#" not in target:
                continue
            file_part, anchor = target.split("#", 1)
            linked = (path.parent / file_part) if file_part else path
            if linked.suffix == ".md" and linked.is_file() and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}:{number}: ({target})")
    assert not broken, "links to missing headings:\n" + "\n".join(broken)


def test_the_link_check_finds_links():
    """Guards the regular expression: the docs index links every page."""
    index = [target for _, line in _prose_lines(DOCS / "README.md") for target in LINK.findall(line)]
    assert "install.md" in index and "settings.md" in index
