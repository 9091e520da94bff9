"""``oicsr-lab course grade``: nbgrader's autograder over a folder of submissions, scores into a CSV.

Submissions are laid out ``<folder>/<student>/<notebook>.ipynb`` (or nbgrader's own
``<folder>/<student>/<assignment>/<notebook>.ipynb``); each notebook is graded as the assignment
of the same name in the course directory :func:`~oicsr_lab.course.release.release` wrote. The
autograder re-inserts the hidden tests, executes the notebook in a fresh kernel (at the preset
``preset``: the checks recompute their references, so the ``ci`` scale grades the same answers in
seconds) and scores each check cell. The CSV has one row per (student, notebook): the
automatically graded points, the written answers still to grade by hand, and which checks failed.
"""

from __future__ import annotations

import csv
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_path
from .release import api

FIELDS = ("student", "notebook", "auto_score", "auto_max", "written_max", "needs_manual_grade", "failed_checks")


def collect(submissions: Path, assignments: set[str]) -> list[tuple[str, str, Path]]:
    """``(student, assignment, notebook path)`` of every submitted lecture notebook under ``submissions``."""
    if not submissions.is_dir():
        raise ConfigError(f"{submissions}: not a folder; lay submissions out as <folder>/<student>/<notebook>.ipynb")
    found = []
    for student in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for nb in sorted(student.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in nb.parts:
                continue
            if nb.stem not in assignments:
                known = ", ".join(sorted(assignments))
                raise ConfigError(f"{nb}: no assignment {nb.stem!r} in the course; known: {known}")
            found.append((student.name, nb.stem, nb))
    if not found:
        raise ConfigError(f"{submissions}: no notebooks found; lay submissions out as "
                          "<folder>/<student>/<notebook>.ipynb")
    return found


def grade_submissions(submissions: str | Path, course: str | Path = "dist/course", out: str | Path | None = None,
                      preset: str = "ci", timeout: int = 1800, log: Any = print) -> list[dict[str, Any]]:
    """Autograde every notebook under ``submissions`` against ``course``'s release; write and return the rows."""
    root = Path(course) / "instructor" / "nbgrader"
    if not (root / "source").is_dir():
        raise ConfigError(f"{root}: no nbgrader course directory; run `oicsr-lab course release --out {course}` first")
    assignments = {p.name for p in (root / "source").iterdir() if p.is_dir()}
    found = collect(Path(submissions), assignments)
    os.environ["OICSR_LAB_NB_PRESET"] = preset
    os.environ.setdefault("OICSR_LAB_PROGRESS", "0")
    nbg = api(root, timeout)
    for student, assignment, nb in found:
        dest = root / "submitted" / student / assignment
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        shutil.copy2(nb, dest / f"{assignment}.ipynb")
    rows = []
    from nbgrader.api import Gradebook

    for student, assignment in sorted({(s, a) for s, a, _ in found}):
        log(f"grading {student} / {assignment}")
        with warnings.catch_warnings():  # nbgrader's own SQLAlchemy session warnings say nothing to a user
            warnings.filterwarnings("ignore", message=".*not in session.*")
            result = nbg.autograde(assignment, student, force=True, create=True)
        if not result["success"]:
            raise ConfigError(f"{student}/{assignment}: nbgrader autograde failed: "
                              f"{(result['error'] or '').strip().splitlines()[-1:]}")
        with warnings.catch_warnings(), Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            warnings.filterwarnings("ignore", message=".*not in session.*")
            sub = gb.find_submission_notebook(assignment, assignment, student)
            failed = sorted(g.name for g in sub.grades if g.cell_type == "code" and (g.score or 0) < g.max_score)
            rows.append({"student": student, "notebook": assignment, "auto_score": float(sub.code_score),
                         "auto_max": float(sub.max_code_score), "written_max": float(sub.max_written_score),
                         "needs_manual_grade": bool(sub.needs_manual_grade), "failed_checks": " ".join(failed)})
    if out is not None:
        with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(rows)
        log(f"wrote {out} ({len(rows)} rows)")
    return rows
