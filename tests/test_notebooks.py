"""Execute every notebook at ``ci`` scale with papermill and check what it shows and computes.

Each notebook runs in a fresh kernel from the committed file (outputs stripped) into a tmp
output, with ``OICSR_LAB_NB_PRESET=ci``, progress bars off, a session-wide tmp run cache
(``OICSR_LAB_NB_CACHE``: notebook 01 trains the runs, 02-05 reuse them, exactly as in a
course) and the working directory set to a tmp folder. A notebook reports its key numbers in a
cell tagged ``results`` that writes ``OICSR_LAB_RESULTS {json}`` inside an HTML comment (the page
shows nothing, and the cell's code is collapsed: students never see it); the checks below read them.

The structural checks (no outputs committed, a ``parameters`` cell reading the preset from the
environment, exercises at the end) run without executing anything.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("*.ipynb"))
MARKER = "OICSR_LAB_RESULTS "
LECTURES = [n for n in NOTEBOOKS if n[:2].isdigit()]
PLOTLY_MIMES = ("application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NB_DIR / name, as_version=4)


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


# --------------------------------------------------------------------------- structure (fast)
def test_expected_notebooks_present() -> None:
    expected = {"00_tour", "01_train_regularizers", "02_channel_energy", "03_pre_retraining_accuracy",
                "04_global_greedy_pruning", "05_iterative_pipeline", "06_resnet50_imagenet", "dashboard"}
    assert expected <= {Path(n).stem for n in NOTEBOOKS}, sorted(expected - {Path(n).stem for n in NOTEBOOKS})


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{name}: cells {dirty} carry outputs; strip them (jupyter nbconvert --clear-output --inplace)"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell(name: str) -> None:
    nb = _read(name)
    params = _tagged(nb, "parameters")
    assert len(params) == 1, f"{name}: needs exactly one cell tagged 'parameters' (papermill)"
    src = params[0].source
    assert 'os.environ.get("OICSR_LAB_NB_PRESET"' in src, f"{name}: PRESET must default to $OICSR_LAB_NB_PRESET"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is params[0], f"{name}: the parameters cell must be the first code cell"
    assert len(_tagged(nb, "results")) == 1, f"{name}: needs one cell tagged 'results' printing {MARKER!r}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_results_cell_hidden_from_students(name: str) -> None:
    """The machine-readable results cell stays, collapsed (code and output) in JupyterLab."""
    cell = _tagged(_read(name), "results")[0]
    hidden = cell.metadata.get("jupyter", {})
    assert hidden.get("source_hidden") is True and hidden.get("outputs_hidden") is True, (
        f"{name}: set the results cell's metadata jupyter.source_hidden and jupyter.outputs_hidden to true")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_keyed_by_the_shared_data_identity(name: str) -> None:
    """Notebooks key cached runs with ``data_identity`` (as reproduce does), never a copy of its dict."""
    src = "".join(c.source for c in _read(name).cells if c.cell_type == "code")
    assert '"name": data.name' not in src, f"{name}: call oicsr_lab.experiments.runs.data_identity(data) instead"
    if "train_cached(" in src or "run_folder(" in src:
        assert "data_id = data_identity(data)" in src, f"{name}: key runs with data_identity(data)"


@pytest.mark.parametrize("name", LECTURES)
def test_reads_like_a_lecture(name: str) -> None:
    nb = _read(name)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), f"{name}: start with a title"
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(md) >= len(code) // 2, f"{name}: {len(md)} markdown cells for {len(code)} code cells"
    ex = exercises_start(nb)
    assert ex is not None, f"{name}: end with a '## Exercises' section"
    assert "What to look for" in "".join(c.source for c in md[:ex]), f"{name}: say what to look for"


def exercises_start(nb: nbformat.NotebookNode) -> int | None:
    """Index of the '## Exercises' markdown cell (the course part: exercises, solutions, checks)."""
    starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    return starts[0] if starts else None


def nbgrader_cells(nb: nbformat.NotebookNode, kind: str) -> list:
    """Cells whose nbgrader grade_id ends with ``-kind`` (solution, observation, check)."""
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").endswith(f"-{kind}")]


@pytest.mark.parametrize("name", LECTURES)
def test_every_exercise_has_a_worked_solution(name: str) -> None:
    """Each exercise: statement, solution cell (nbgrader markers), written observation; checks where registered."""
    from oicsr_lab.course.checks import EXERCISES, verdict

    verdict("00.1", None)  # loads the registry
    nb, nbid = _read(name), name[:2]
    ex = exercises_start(nb)
    statements = [c for c in nb.cells[ex:] if c.cell_type == "markdown" and c.source.startswith("### Exercise ")]
    solutions, observations = nbgrader_cells(nb, "solution"), nbgrader_cells(nb, "observation")
    assert len(statements) == len(solutions) == len(observations) == 5, (name, len(statements), len(solutions))
    for c in solutions:
        assert c.cell_type == "code" and c.metadata.nbgrader["solution"] is True
        assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source, c.source[:80]
        body = c.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
        assert len(body.strip().splitlines()) >= 1, f"{name}: an empty solution"
    for c in observations:
        assert c.cell_type == "markdown" and c.metadata.nbgrader["grade"] is True and len(c.source) > 200, c.source[:80]
    checks = nbgrader_cells(nb, "check")
    ids = sorted(c.source.split('course.check("')[1].split('"')[0] for c in checks)
    assert ids == sorted(e for e in EXERCISES if e.startswith(nbid)), f"{name}: check cells {ids}"
    for c in checks:
        ex_id = c.source.split('course.check("')[1].split('"')[0]
        assert c.metadata.nbgrader["locked"] is True and c.metadata.nbgrader["points"] >= 1
        assert f'### BEGIN HIDDEN TESTS\ncourse.grade("{ex_id}",' in c.source, c.source


# --------------------------------------------------------------------------- execution (ci scale)
@pytest.fixture(scope="module")
def nb_env(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """Environment of every notebook kernel: ci preset, no progress bars, one shared tmp run cache."""
    cache = tmp_path_factory.mktemp("nb-cache")
    env = {
        "OICSR_LAB_NB_PRESET": "ci", "OICSR_LAB_PROGRESS": "0", "OICSR_LAB_NB_CACHE": str(cache),
        "OICSR_LAB_DATA": str(data_dir), "OICSR_LAB_THREADS": os.environ.get("OICSR_LAB_THREADS", "1"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield cache
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def execute(name: str, out_dir: Path) -> tuple[nbformat.NotebookNode, dict, float]:
    """Run notebook ``name`` with papermill into ``out_dir``; return (executed notebook, results, seconds)."""
    import papermill

    out = out_dir / name
    t0 = time.perf_counter()
    papermill.execute_notebook(str(NB_DIR / name), str(out), kernel_name="python3", cwd=str(out_dir),
                               progress_bar=False, log_output=False, execution_timeout=600)
    seconds = time.perf_counter() - t0
    nb = nbformat.read(out, as_version=4)
    texts = []  # in an HTML comment (invisible in JupyterLab and Voila), or printed
    for c in _tagged(nb, "results"):
        for o in c.outputs:
            texts.append(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/html", ""))
    lines = [ln.strip().removeprefix("<!--").removesuffix("-->").strip() for t in texts for ln in t.splitlines()]
    lines = [ln for ln in lines if ln.startswith(MARKER)]
    assert lines, f"{name}: the results cell printed no {MARKER!r} line"
    return nb, json.loads(lines[-1][len(MARKER):]), seconds


def mimes(nb: nbformat.NotebookNode) -> dict[str, int]:
    """How many outputs of each mime type the executed notebook holds."""
    counts: dict[str, int] = {}
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.output_type == "error":
                counts["error"] = counts.get("error", 0) + 1
            for m in o.get("data", {}):
                counts[m] = counts.get(m, 0) + 1
    return counts


def _check_00(r: dict, m: dict) -> None:
    assert m.get("image/png", 0) >= 3  # sample images, the out-in-channel picture, energies
    assert r["prunable_groups"] == 9 and r["groups"] > r["prunable_groups"]
    assert 0.3 <= r["achieved_ratio"] < 0.36
    assert r["flops_after"] < r["flops_before"]
    assert abs(r["flops_after"] - (1 - r["achieved_ratio"]) * r["flops_before"]) <= 1
    assert abs(r["masked_acc"] - r["pruned_acc"]) < 1e-6  # masks and surgery are one plan
    assert 0 <= r["masked_acc"] <= 100 and 0 <= r["dense_acc"] <= 100


def _check_01(r: dict, m: dict) -> None:
    assert m.get("application/vnd.jupyter.widget-view+json", 0) >= 1  # the live FigureWidget
    assert m.get("image/png", 0) >= 1
    assert set(r["regs"]) == {"l2", "gl", "l1bn", "oicsr_gl"}
    assert all(v == 2 for v in r["epochs"].values()), r["epochs"]
    assert all(5 <= v <= 100 for v in r["test_acc"].values()), r["test_acc"]


def shipped_regs() -> set[str]:
    """The regularisers the shipped manifest holds for ResNet-20 seed 0: what notebooks 02-04 load by default."""
    from oicsr_lab.pretrained import list_pretrained

    return {e["reg"] for e in list_pretrained() if e["model"] == "resnet20" and int(e["seed"]) == 0}


def _check_02(r: dict, m: dict) -> None:
    assert m.get("image/png", 0) >= 4  # Figure 3 (linear + log), grid, out vs out-in
    assert set(r["weak_fraction"]) == shipped_regs() and r["model"] == "resnet20"  # the shipped networks
    assert m.get("application/vnd.jupyter.widget-view+json", 0) >= 2  # energy explorer, channel viewer
    assert r["layers"] == 9 and r["layer"].endswith("conv1")
    assert all(0 <= v <= 1 for v in r["weak_fraction"].values())
    assert all(0 <= v <= 1 for v in r["overlap_out_vs_out_in"].values())


def _check_03(r: dict, m: dict) -> None:
    assert m.get("image/png", 0) >= 1 and m.get("application/vnd.plotly.v1+json", 0) >= 1
    assert m.get("application/vnd.jupyter.widget-view+json", 0) >= 1
    assert set(r["acc"]) == shipped_regs()  # every shipped regulariser, nothing hard-coded
    assert all(r["dense_acc"][reg] > 75 for reg in r["acc"]), r["dense_acc"]  # trained networks, not a 2-epoch run
    for reg, by_ratio in r["acc"].items():
        assert len(by_ratio) == len(r["ratios"]), (reg, by_ratio)
        assert all(0 <= v <= 100 for v in by_ratio.values())
    for ratio, achieved in r["achieved"].items():
        assert float(ratio) <= achieved < float(ratio) + 0.08


def _check_04(r: dict, m: dict) -> None:
    assert m.get("image/png", 0) >= 4
    assert set(r["regs"]) == shipped_regs() and r["dense_acc"] > 75
    assert m.get("application/vnd.jupyter.widget-view+json", 0) >= 1  # the pruning explorer
    assert 0.3 <= r["achieved_ratio"] < 0.36
    assert r["pruned_model_flops"] == r["flops_after"]
    assert abs(r["masked_acc"] - r["pruned_acc"]) < 1e-6
    assert set(r["normalizations"]) == {"none", "layer_sum", "layer_max", "per_element"}
    assert all(n["achieved_ratio"] >= 0.3 for n in r["normalizations"].values())
    assert 0.3 < r["explorer_max_ratio"] < 1


def _check_05(r: dict, m: dict) -> None:
    assert m.get("image/png", 0) >= 1  # the pipeline figure
    assert m.get("application/vnd.jupyter.widget-view+json", 0) >= 1  # the live FigureWidget
    assert r["steps"] >= 2
    assert r["target_ratio"] - 0.01 <= r["final_achieved_ratio"] < r["target_ratio"] + 0.08
    assert r["final_flops"] < r["dense_flops"]
    assert r["latency_ms"]["pruned"] > 0 and r["latency_ms"]["dense"] > 0
    assert r["reload_matches"]


def _check_06(r: dict, m: dict) -> None:
    assert abs(r["dense_macs_m"] - 4089) < 1  # the paper's FLOPs convention
    assert r["prunable_groups"] == 32  # conv1->conv2 and conv2->conv3 of 16 bottlenecks
    for target, got in r["computed_pruned"].items():
        assert float(target) <= got < float(target) + 0.02
    assert r["published_rows"] == 4
    assert r["imagenet"] is False


def _check_dashboard(r: dict, m: dict) -> None:
    assert m.get("application/vnd.jupyter.widget-view+json", 0) >= 1
    assert set(r["explorers"]) >= {"energy", "pruning", "channels"}
    assert r["source"] == "shipped" and set(r["test_acc"]) == shipped_regs()


CHECKS = {"00_tour": _check_00, "01_train_regularizers": _check_01, "02_channel_energy": _check_02,
          "03_pre_retraining_accuracy": _check_03, "04_global_greedy_pruning": _check_04,
          "05_iterative_pipeline": _check_05, "06_resnet50_imagenet": _check_06, "dashboard": _check_dashboard}


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_at_ci_scale(name: str, nb_env: Path, tmp_path: Path) -> None:
    nb, results, seconds = execute(name, tmp_path)
    counts = mimes(nb)
    assert "error" not in counts
    assert results["preset"] == "ci"
    CHECKS[Path(name).stem](results, counts)
    feedback = check_feedback(nb)  # the worked solutions pass every check (and its hidden grading asserts ran)
    assert all(v == "right" for v in feedback.values()), feedback
    assert len(feedback) == len(nbgrader_cells(nb, "check")), feedback
    print(f"{name}: {seconds:.1f}s")


def check_feedback(nb: nbformat.NotebookNode) -> dict[int, str]:
    """The verdict each executed check cell showed: right / not yet / not answered yet (by cell index)."""
    out = {}
    for i, c in enumerate(nb.cells):
        if not c.metadata.get("nbgrader", {}).get("grade_id", "").endswith("-check"):
            continue
        text = " ".join(o.get("data", {}).get("text/html", "") + o.get("text", "") for o in c.get("outputs", []))
        out[i] = ("right" if "✓ right" in text else "not yet" if "✗ not yet" in text
                  else "not answered" if "not answered yet" in text else "none")
    return out


@pytest.mark.notebooks
@pytest.mark.timeout(900)
def test_notebook_05_and_reproduce_share_pipelines(nb_env: Path, data_dir: Path, tmp_path: Path) -> None:
    """Notebook 05 keys its pipelines exactly as ``reproduce`` does: each finds the other's finished ones.

    Notebook 05 runs (or reads back) its two pipelines in the shared ci cache; ``reproduce`` over the
    same cache folder then finds them: it adds no pipeline folder of its own. So after ``make demo``
    the notebook reads back the pipelines demo ran instead of running them again (and the other way round).
    """
    from oicsr_lab.experiments.reproduce import reproduce

    _, results, _ = execute("05_iterative_pipeline.ipynb", tmp_path)
    regs = results["regs"]
    assert set(results["pipeline_cached"]) == set(regs)
    def folders() -> list[str]:
        return sorted(p.name for p in (nb_env / "ci" / "pipelines").iterdir() if p.is_dir())

    before = folders()  # the notebook's pipelines, plus exercise 1's one-shot pipeline (other settings: own folder)
    assert sorted({name.split("-")[0] for name in before}) == sorted(regs), before
    reproduce("ci", nb_env / "ci", regs=regs, ratios=[0.3], table1=False, threads=1, data_dir=data_dir,
              show_progress=False, log=None)
    assert folders() == before, f"reproduce keyed its pipelines differently from notebook 05: {before} -> {folders()}"
