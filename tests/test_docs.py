"""The README and docs/ tell a user only what they have (issue 18): every relative link resolves
to a file in the repository (none points outside it, as ``../shared/*.md`` once did), and every
Python snippet of the README is an example file, included verbatim (tests/examples runs them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: [text](target) and [text](target "title"), images too; not inside code spans.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves_inside_the_repository(document: Path) -> None:
    broken = []
    for target in links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # https:, mailto:, an anchor of the same page
        resolved = (document.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(REPO.resolve()) or not resolved.exists():
            broken.append(target)
    assert broken == [], f"{document.name}: links that do not resolve inside the repository: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_document_cites_a_path_outside_the_repository(document: Path) -> None:
    assert "../shared" not in document.read_text(encoding="utf-8")


def test_user_facing_source_text_cites_no_path_outside_the_repository() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "src").rglob("*")
        if p.suffix in (".py", ".html", ".toml", ".md") and "../shared" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_the_link_finder_finds_links() -> None:
    """A control: the test above would pass on a finder that finds nothing."""
    assert "docs/requirements.md" in links(REPO / "README.md")
    assert "deploy/cluster/README.md" in links(REPO / "README.md")


def test_every_python_snippet_of_the_readme_is_an_example_file_verbatim() -> None:
    """Issue 18: the snippets run as written, because they are the files tests run."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```python\n(.*?)```\n", readme, re.S)
    files = {
        p.name: p.read_text(encoding="utf-8") for p in sorted((REPO / "examples" / "readme").glob("*.py"))
    }
    files.pop("__init__.py")
    assert snippets == [files["protect_api.py"], files["tool_actions.py"], files["call_api.py"]]
    for name in files:
        assert f"`examples/readme/{name}`" in readme
