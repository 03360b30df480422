"""The design docs stay true to the tree: links resolve, named files exist, and module docs
point at docs/ rather than at a contract file outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# a repository path in backticks: `collector/spool.py`, `schema/migrations/`
REPO_PATH = re.compile(r"`((?:sessionlens|collector|processors|schema|instrumentation|tests|bench|examples|docs)/[\w./-]*)`")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def test_the_design_pages_exist_and_the_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/pipeline.md", "docs/sessions.md", "docs/counting.md"):
        assert (ROOT / page).is_file(), page
        assert f"]({page})" in readme, f"README does not link {page}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_files_the_docs_name_exist(page):
    missing = [p for p in REPO_PATH.findall(page.read_text()) if not (ROOT / p).exists()]
    assert not missing, missing


def test_slug_follows_github():
    assert _slug(" ClickHouse exporter (`collector/clickhouse_exporter.py`, `collector/spool.py`)") == (
        "clickhouse-exporter-collectorclickhouse_exporterpy-collectorspoolpy")
    assert _slug("1. Explicit sessions win") == "1-explicit-sessions-win"


def test_no_module_points_at_the_contract_outside_the_repo():
    # Released migrations are frozen (their text is held to a sha256), so they keep what
    # they said; everything else explains itself or points into docs/.
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("sessionlens", "instrumentation", "collector", "processors", "schema", "tests", "bench", "examples")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\bSPEC\b|shared/SPEC", path.read_text()) and path.name != "test_docs.py"
    ]
    assert not offenders, offenders
