"""The README files of the student and instructor releases (``oicsr-lab course release``)."""

from __future__ import annotations

STUDENT = """# OICSR lab: channel pruning, student notebooks

Seven notebooks on channel pruning with Out-In-Channel Sparsity Regularization (OICSR, CVPR 2019).

## Setup (once, about 5 minutes, no internet needed after the install)

    python3 -m venv .venv && . .venv/bin/activate
    pip install oicsr_lab-*.whl        # the wheel in this folder, or: pip install -e "<repo>[course]"
    jupyter lab                        # then open 00_tour.ipynb

Everything the notebooks need ships inside the package: the CIFAR-10 sample (5,000 training and
1,000 test images) and the trained ResNet-20 networks (`oicsr-lab pretrained list`).

## Notebooks

{table}

## How the exercises work

Each notebook ends with exercises. Write your code where it says `# YOUR CODE HERE` and your
observation where it says `YOUR ANSWER HERE`. Many exercises ask you to store a result in a
variable such as `ex3_stage = ...`; the cell below it is a **check**: run it and it says
*not answered yet*, *not yet* with a hint, or *right*. A check never shows the expected answer.
Do not edit or delete the check cells: they are also used to grade your work.

Scale: the first code cell of every notebook (`PRESET`) sets how much is trained; keep the default
unless your instructor says otherwise. `PRESET = "ci"` runs everything in seconds (tiny networks,
useful to test your code before a long run).

Hand in the `.ipynb` files as they are (File > Save); the grader reruns them.
"""

INSTRUCTOR = """# OICSR lab: instructor release

* `*.ipynb` here: the notebooks **with** worked solutions (code + expected observation) and the
  hidden grading tests. The student versions are in `../student/`.
* `nbgrader/`: the nbgrader course directory (`source/`, `release/`, `gradebook.db`), one
  assignment per notebook ({names}).

Grade a folder of submissions laid out `<folder>/<student>/<notebook>.ipynb`:

    oicsr-lab course grade <folder> --course <this release's parent folder> --out grades.csv

Each notebook is re-executed by nbgrader's autograder with the hidden tests put back; the CSV has
one row per student and notebook: `auto_score` / `auto_max` (the checks), `written_max` (the
written observations, graded by hand: `nbgrader formgrader` or JupyterLab's *Formgrader* panel
on `nbgrader/`), and the ids of the failed checks. See docs/course.md for the syllabus.
"""

TITLES = {
    "00_tour": "what channel pruning is; the whole pipeline in ten cells",
    "01_train_regularizers": "train your own networks under each regulariser (the exercise budget)",
    "02_channel_energy": "out-in-channel energy and Figure 3, on the shipped networks",
    "03_pre_retraining_accuracy": "accuracy before retraining and Figure 4, on the shipped networks",
    "04_global_greedy_pruning": "Algorithm 1 step by step, on the shipped networks",
    "05_iterative_pipeline": "prune, retrain, repeat (Figure 2); measured speed-up",
    "06_resnet50_imagenet": "ResNet-50's FLOPs and Table 1",
}


def student_readme(names: list[str]) -> str:
    """The student README listing ``names`` (notebook file names)."""
    table = "\n".join(f"* `{n}`: {TITLES.get(n.removesuffix('.ipynb'), '')}" for n in names)
    return STUDENT.format(table=table)


def instructor_readme(names: list[str]) -> str:
    """The instructor README listing the assignments."""
    return INSTRUCTOR.format(names=", ".join(n.removesuffix(".ipynb") for n in names))
