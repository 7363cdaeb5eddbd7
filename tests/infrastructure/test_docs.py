"""The docs match the tree: every file they name exists, every relative link and anchor resolves.

The README is the front door and the rest lives in docs/; when a file moves, the sentence naming it
must move with it, so a stale path fails here instead of misleading the next reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.template import ROOT

DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "events" / "README.md", *(ROOT / "docs").glob("*.md")])
NAMED_FILE = re.compile(r"`((?:bench|docs|functions|infra|tests|events)/[\w./-]+\.\w+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def broken_references(doc: Path) -> list[str]:
    text = doc.read_text()
    broken = [path for path in NAMED_FILE.findall(text) if not (ROOT / path).exists()]
    for link in LINK.findall(text):
        if "://" in link or link.startswith("mailto:"):
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path.read_text())):
            broken.append(link)
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_doc_names_only_files_and_anchors_that_exist(doc: Path):
    assert broken_references(doc) == []


def test_a_stale_path_or_anchor_is_caught(tmp_path: Path):
    # Given a doc naming a moved test, a missing guide and a missing section of an existing one
    doc = tmp_path / "guide.md"
    (tmp_path / "other.md").write_text("# Other\n## Teardown\n")
    doc.write_text("See `tests/unit/test_gone.py`, [a guide](missing.md) and [a section](other.md#no-such-section).\n")

    # When its references are checked
    broken = broken_references(doc)

    # Then each of the three is reported
    assert broken == ["tests/unit/test_gone.py", "missing.md", "other.md#no-such-section"]


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_the_readme_links_into_the_guides():
    readme = (ROOT / "README.md").read_text()
    guides = {link.partition("#")[0] for link in LINK.findall(readme) if link.startswith("docs/")}
    assert ({"docs/api.md", "docs/operations.md", "docs/local-stack.md"} <= guides, "DESIGN.md" in readme) == (
        True,
        False,
    )
