"""The course release: nbgrader's student versions, their unanswered runs, and the grading round trip.

* ``test_release`` (default suite, seconds): ``oicsr-lab course release`` writes student notebooks
  with every solution and hidden test removed and the checks kept, instructor notebooks with both,
  the READMEs and the nbgrader course directory.
* ``test_student_notebook_runs_unanswered`` (slow): every student notebook executes at ``ci``
  scale without an error, and every check cell says "not answered yet" -- the checks are not vacuous.
* ``test_grading_round_trip`` (slow): notebook 06 submitted three times -- solved, unanswered,
  answered wrong -- and graded by ``oicsr-lab course grade``: the CSV gives full, zero and zero points.

The solution notebooks themselves (``notebooks/``) run with every check right in ``test_notebooks.py``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import nbformat
import pytest
from test_notebooks import LECTURES, check_feedback, nbgrader_cells

from oicsr_lab.cli import main

ROUND_TRIP = "06_resnet50_imagenet"  # three checks, nothing trained: the cheapest full notebook to grade


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``oicsr-lab course release`` into a tmp folder (nbgrader generate_assignment per notebook)."""
    out = tmp_path_factory.mktemp("course")
    assert main(["course", "release", "--out", str(out)]) == 0
    return out


def test_release(released: Path) -> None:
    student, instructor = released / "student", released / "instructor"
    assert sorted(p.name for p in student.glob("*.ipynb")) == LECTURES
    assert sorted(p.name for p in instructor.glob("*.ipynb")) == LECTURES
    assert "YOUR CODE HERE" in (student / "README.md").read_text()
    assert "course grade" in (instructor / "README.md").read_text()
    assert (instructor / "nbgrader" / "gradebook.db").is_file()
    for name in LECTURES:
        stu = nbformat.read(student / name, as_version=4)
        ins = nbformat.read(instructor / name, as_version=4)
        text = "\n".join(c.source for c in stu.cells)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "course.grade(" not in text, name
        assert len(nbgrader_cells(stu, "check")) == len(nbgrader_cells(ins, "check")), name
        for c in nbgrader_cells(stu, "solution"):
            assert "# YOUR CODE HERE" in c.source, (name, c.source)
        for c in nbgrader_cells(stu, "observation"):
            assert c.source.startswith("YOUR ANSWER HERE"), (name, c.source)
        assert all("course.check(" in c.source for c in nbgrader_cells(stu, "check"))
        assert "### BEGIN SOLUTION" in "\n".join(c.source for c in ins.cells)
        params = [c for c in stu.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and "OICSR_LAB_NB_PRESET" in params[0].source, name  # scale still settable


@pytest.fixture(scope="module")
def ci_env(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """The notebooks' ci environment (as test_notebooks.nb_env) for papermill and nbgrader kernels."""
    env = {"OICSR_LAB_NB_PRESET": "ci", "OICSR_LAB_PROGRESS": "0", "OICSR_LAB_DATA": str(data_dir),
           "OICSR_LAB_NB_CACHE": str(tmp_path_factory.mktemp("course-cache")),
           "OICSR_LAB_THREADS": os.environ.get("OICSR_LAB_THREADS", "1"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", LECTURES)
def test_student_notebook_runs_unanswered(name: str, released: Path, ci_env: dict, tmp_path: Path) -> None:
    import papermill

    out = tmp_path / name
    papermill.execute_notebook(str(released / "student" / name), str(out), kernel_name="python3", cwd=str(tmp_path),
                               progress_bar=False, log_output=False, execution_timeout=600)
    nb = nbformat.read(out, as_version=4)
    errors = [o.get("ename") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, (name, errors)
    feedback = check_feedback(nb)
    assert feedback and all(v == "not answered" for v in feedback.values()), (name, feedback)


def solved(student: nbformat.NotebookNode, instructor: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook with each stub replaced by the instructor's solution code (what a student writes)."""
    sol = {c.metadata.nbgrader["grade_id"]: c.source for c in nbgrader_cells(instructor, "solution")}
    for c in nbgrader_cells(student, "solution"):
        body = sol[c.metadata.nbgrader["grade_id"]].split("### BEGIN SOLUTION\n")[1].split("### END SOLUTION")[0]
        c.source = c.source.replace("# YOUR CODE HERE\n", body).replace("# YOUR CODE HERE", body)
    return student


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_grading_round_trip(released: Path, ci_env: dict, tmp_path: Path) -> None:
    name = f"{ROUND_TRIP}.ipynb"
    student = nbformat.read(released / "student" / name, as_version=4)
    instructor = nbformat.read(released / "instructor" / name, as_version=4)
    subs = tmp_path / "submissions"
    for who in ("alice", "bob", "carol"):
        (subs / who).mkdir(parents=True)
    nbformat.write(solved(nbformat.from_dict(student), instructor), subs / "alice" / name)  # every exercise solved
    nbformat.write(student, subs / "bob" / name)  # handed in unanswered
    wrong = nbformat.from_dict(student)  # answered, but wrong: MACs at 56x56, another stage, every ratio reachable
    answers = {"ex06_1-solution": "ex1_bottleneck_macs = 56 * 56 * (1024 * 256 + 256 * 256 * 9 + 256 * 1024)",
               "ex06_2-solution": 'ex2_stage = "layer4"', "ex06_4-solution": "ex4_reachable = list(RATIOS)"}
    for c in nbgrader_cells(wrong, "solution"):
        if c.metadata.nbgrader["grade_id"] in answers:
            c.source = c.source.replace("# YOUR CODE HERE", answers[c.metadata.nbgrader["grade_id"]])
    nbformat.write(wrong, subs / "carol" / name)
    grades = tmp_path / "grades.csv"
    assert main(["course", "grade", str(subs), "--course", str(released), "--csv", str(grades)]) == 0
    rows = {r["student"]: r for r in csv.DictReader(grades.open())}
    assert set(rows) == {"alice", "bob", "carol"}
    checks = len(nbgrader_cells(instructor, "check"))
    assert checks == 3
    assert float(rows["alice"]["auto_score"]) == float(rows["alice"]["auto_max"]) == checks, rows["alice"]
    assert rows["alice"]["failed_checks"] == ""
    for who in ("bob", "carol"):
        assert float(rows[who]["auto_score"]) == 0 and float(rows[who]["auto_max"]) == checks, rows[who]
        assert len(rows[who]["failed_checks"].split()) == checks, rows[who]
    assert all(float(r["written_max"]) == 5 for r in rows.values())  # five observations, graded by hand


@pytest.mark.browser
@pytest.mark.timeout(1200)
def test_check_feedback_in_jupyterlab(released: Path, data_dir: Path, tmp_path: Path) -> None:
    """A student runs notebook 06 in JupyterLab (Chromium): one answer right, one wrong, one left open.

    The check cells show "right", "not yet" with a hint (and not the reference value), and "not
    answered yet". The two cells of the wrong answer are saved as docs/img/course-check.png with
    OICSR_LAB_SAVE_SCREENSHOTS=1 (docs/course.md shows it).
    """
    from browser_helpers import CHROMIUM_ARGS, DOCS_IMG, chromium, kernel_env, lab_server, sync_api

    executable, api = chromium(), sync_api()
    name = f"{ROUND_TRIP}.ipynb"
    nb = nbformat.read(released / "student" / name, as_version=4)
    answers = {"ex06_1-solution": "ex1_bottleneck_macs = 14 * 14 * (1024 * 256 + 256 * 256 * 9 + 256 * 1024)",
               "ex06_2-solution": 'ex2_stage = "layer4"  # the deepest stage: its channels are the widest'}
    for c in nbgrader_cells(nb, "solution"):
        if c.metadata.nbgrader["grade_id"] in answers:
            c.source = c.source.replace("# YOUR CODE HERE", answers[c.metadata.nbgrader["grade_id"]])
    root = tmp_path / "student"
    root.mkdir()
    nbformat.write(nb, root / name)
    with lab_server(root, kernel_env(tmp_path, data_dir, tmp_path / "cache"), tmp_path / "lab.log") as (base, token), \
            api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True,
                                     chromium_sandbox=False)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{base}/lab/tree/{name}?reset&token={token}", timeout=120_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        page.wait_for_function(
            "() => document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\") !== null"
            " || [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\|\\s*Idle/.test(e.textContent))",
            timeout=120_000)
        page.wait_for_timeout(3000)  # the kernel connection settles: a Run All sent earlier can be dropped
        feedback = page.locator(".jp-OutputArea-output", has_text="Exercise 06.4")
        for attempt in range(3):  # Run All again if the menu click was lost (the notebook is idempotent)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            try:
                feedback.first.wait_for(state="attached", timeout=300_000)
                break
            except api.TimeoutError:
                page.screenshot(path=str(tmp_path / f"run-all-{attempt}.png"))
        else:
            pytest.fail(f"no check feedback after three Run All; screenshots in {tmp_path}")
        texts = {ex: page.locator(".jp-OutputArea-output", has_text=f"Exercise {ex}:").first.inner_text()
                 for ex in ("06.1", "06.2", "06.4")}
        assert "right" in texts["06.1"], texts
        assert "not yet" in texts["06.2"] and "per_channel" in texts["06.2"] and "layer1" not in texts["06.2"], texts
        assert "not answered yet" in texts["06.4"], texts
        check_cell = page.locator(".jp-CodeCell", has=page.locator(".jp-OutputArea-output", has_text="Exercise 06.2:"))
        answer_cell = page.locator(".jp-CodeCell", has_text="ex2_stage = None")
        question = page.locator(".jp-MarkdownCell", has_text="Exercise 2 · Why 37.3")
        cells = (question, answer_cell, check_cell)
        for height in (900, 1400, 2000):  # the three cells together, above the status bar
            page.set_viewport_size({"width": 1100, "height": height})
            question.first.evaluate("e => e.scrollIntoView({block: 'start'})")  # the notebook panel scrolls
            page.wait_for_timeout(1000)
            boxes = [loc.first.bounding_box() for loc in cells]
            top, bottom = min(b["y"] for b in boxes), max(b["y"] + b["height"] for b in boxes)
            if bottom < height - 40:
                break
        left = min(b["x"] for b in boxes)
        right = max(b["x"] + b["width"] for b in boxes)
        png = page.screenshot(clip={"x": left, "y": top, "width": right - left, "height": bottom - top},
                              animations="disabled")
        browser.close()
    (tmp_path / "course-check.png").write_bytes(png)
    if os.environ.get("OICSR_LAB_SAVE_SCREENSHOTS") == "1":
        (DOCS_IMG / "course-check.png").write_bytes(png)
