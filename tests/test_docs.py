"""What the docs cite exists: repository paths, links, make targets, pip extras, notebooks.

Scanned: README.md, docs/*.md, notebooks/README.md, every notebook's cells and the package's
source (which holds the report template and Table 1's source line). A *repository path* is a
token that starts with one of the repository's top folders (``docs/``, ``oicsr_lab/``, ...),
optionally after ``../``; it must exist relative to the repository root or to the citing
file's folder. Paths with a placeholder (``<preset>``, ``*``) are not checked. A bare file name
in a code span of its own (`` `bench_widgets.py` ``) must exist somewhere in the repository.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP = ("docs", "notebooks", "oicsr_lab", "tests", "benchmarks", "scripts", ".ci")
PATH = re.compile(r"(?<![\w./-])((?:\.\./)*(?:" + "|".join(re.escape(t) for t in TOP)
                  + r")/[\w./-]*[\w/])(?![\w/<*{-])")
BARE = re.compile(r"`([\w.-]+\.(?:md|py|ipynb|toml|yml))`")  # source files; .json/.png are often outputs
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SKIP_DIRS = {".git", ".venv", "reports", "runs", "node_modules", "__pycache__", ".pytest_cache"}


def doc_files() -> list[Path]:
    """The markdown files the issue names: README, docs/*.md, notebooks/README.md."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "notebooks" / "README.md"]


def notebook_text(nb: Path) -> str:
    """Every cell's source of a notebook, joined."""
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells)


def cited_texts() -> list[tuple[Path, str]]:
    """``(file, text)`` of everything scanned."""
    out = [(p, p.read_text(encoding="utf-8")) for p in doc_files()]
    out += [(nb, notebook_text(nb)) for nb in sorted((REPO / "notebooks").glob("*.ipynb"))]
    out += [(py, py.read_text(encoding="utf-8")) for py in sorted((REPO / "oicsr_lab").rglob("*.py"))]
    return out


@cache
def repo_names() -> frozenset[str]:
    """Base names of every file in the repository (outside build/run folders)."""
    names = set()
    for p in REPO.rglob("*"):
        if not SKIP_DIRS.intersection(p.relative_to(REPO).parts):
            names.add(p.name)
    return frozenset(names)


def exists(ref: str, cited_in: Path) -> bool:
    """True when ``ref`` names a file or folder relative to the repository root or the citing file."""
    ref = ref.split("#", 1)[0].rstrip("/")
    return any((base / ref).exists() for base in (REPO, cited_in.parent))


def missing_references(file: Path, text: str) -> list[str]:
    """The paths, links and bare file names in ``text`` that do not exist."""
    bad = [m for m in PATH.findall(text) if not exists(m, file)]
    for target in LINK.findall(text) if file.suffix in (".md", ".ipynb") else []:
        if not re.match(r"[a-z]+:", target) and not target.startswith("#") and not exists(target, file):
            bad.append(target)
    bad += [name for name in BARE.findall(text) if name not in repo_names() and not exists(name, file)]
    return bad


def test_every_cited_repository_path_exists() -> None:
    """No doc, notebook or report/source line cites a file the repository does not hold."""
    problems = [f"{f.relative_to(REPO)}: {ref}" for f, text in cited_texts() for ref in missing_references(f, text)]
    assert not problems, "cited but missing:\n" + "\n".join(problems)


def test_the_checker_finds_a_missing_path() -> None:
    """The scan above can fail: a dangling path, link or bare name is reported; real ones are not."""
    doc = REPO / "docs" / "x.md"
    text = ("see docs/oicsr-reference.md section 5, [m](method.md), [gone](gone.md), `nothing_here.py`, "
            "`bench_widgets.py`, reports/<preset>/index.html, docs/results/<run>/, oicsr_lab/cli/train.py")
    assert missing_references(doc, text) == ["docs/oicsr-reference.md", "gone.md", "nothing_here.py"]


def test_method_reference_is_cited_where_the_paper_is() -> None:
    """The report footer and Table 1's published source point at docs/method.md."""
    from oicsr_lab.experiments.table1 import SOURCE

    assert "docs/method.md" in SOURCE
    assert "docs/method.md" in (REPO / "oicsr_lab" / "plots" / "report.py").read_text(encoding="utf-8")
    assert (REPO / "docs" / "method.md").is_file()


def makefile_targets() -> set[str]:
    """Targets the Makefile defines."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return {m for m in re.findall(r"^([\w-]+)\s*:(?!=)", text, re.M)}


def test_make_targets_in_docs_exist() -> None:
    """Every `make <target>` the docs mention (in code spans or code blocks) is a Makefile target."""
    targets = makefile_targets()
    for f in doc_files():
        text = f.read_text(encoding="utf-8")
        spans = re.findall(r"`make ([\w-]+)", text) + re.findall(r"^make ([\w-]+)", text, re.M)
        assert spans or f.name != "README.md"
        missing = sorted(set(spans) - targets)
        assert not missing, f"{f.relative_to(REPO)} mentions make {missing}; the Makefile has {sorted(targets)}"


def test_pip_extras_in_docs_exist() -> None:
    """Every ``pip install -e ".[extra]"`` in the docs and notebooks names an extra of pyproject.toml."""
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("optional-dependencies", {}))
    texts = [(f, f.read_text(encoding="utf-8")) for f in doc_files()]
    texts += [(nb, notebook_text(nb)) for nb in sorted((REPO / "notebooks").glob("*.ipynb"))]
    for f, text in texts:
        for group in re.findall(r"\.\[([\w,\s-]+)\]", text):
            unknown = {e.strip() for e in group.split(",")} - extras
            assert not unknown, \
                f"{f.relative_to(REPO)} installs extra(s) {sorted(unknown)}; pyproject has {sorted(extras)}"


@pytest.mark.parametrize("doc", ["README.md", "notebooks/README.md"])
def test_notebook_tables_list_every_notebook(doc: str) -> None:
    """The notebook tables of both READMEs name exactly the notebooks in notebooks/."""
    have = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    text = (REPO / doc).read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(\d\d_\w+|dashboard)(?:\.ipynb)?` \|", text, re.M))
    assert listed == have, f"{doc}: notebooks table lists {sorted(listed)}, notebooks/ holds {sorted(have)}"
