"""The README walk as a test: its Quickstart and Command line blocks, run in order at ``ci`` scale.

The rule that turns the README's commands into the ones run here (nothing else is changed):

* every preset name other than ``ci`` (``quick``, ``course``, ``paper`` and any other preset the
  code defines) becomes ``ci`` wherever it appears in a command, so paths follow it
  consistently: ``reports/quick`` becomes ``reports/ci`` and ``runs/resnet20-oicsr_gl-quick``
  becomes ``runs/resnet20-oicsr_gl-ci``;
* ``make <target>`` becomes what ``make -n <target>`` says the target runs (the Makefile is the
  source): its ``.venv/bin/oicsr-lab`` is this environment's ``oicsr-lab``. ``make test``'s
  pytest run gets ``--collect-only``: the suite cannot run inside itself, and collecting it
  checks that every test module imports;
* ``source .venv/bin/activate`` is checked against the Makefile (``make setup`` creates that
  environment) and is otherwise a no-op, since the tests already run inside the environment;
* the run-like subcommands (train, eval, prune, reproduce) get ``--threads 1 --no-progress``;
  comments after ``#`` are dropped.

Every command runs in one temporary folder with ``OICSR_LAB_DATA`` set to the session's data
folder and must exit with 0. ``oicsr-lab`` commands run in-process through
``oicsr_lab.cli.main`` (the installed entry point itself is exercised by tests/test_cli.py), which
saves a second of imports per command. A line of the Command line block that fits none of these rules
fails the test, so no README example goes untested.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RUN_LIKE = ("train", "eval", "prune", "reproduce")


def section(text: str, heading: str) -> str:
    """The text of a ``## heading`` section (up to the next ``## `` heading)."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no '## {heading}' section"
    return m.group(1)


def first_bash_block(text: str) -> list[str]:
    """The non-empty lines of the first ```bash block in ``text``."""
    m = re.search(r"^```bash\n(.*?)^```", text, re.M | re.S)
    assert m, "no ```bash block"
    return [line.strip() for line in m.group(1).splitlines() if line.strip()]


def preset_names() -> set[str]:
    """Every preset the code defines (training presets and reproduce presets)."""
    from oicsr_lab.experiments.spec import REPRODUCE
    from oicsr_lab.train.config import PRESETS

    return set(PRESETS) | set(REPRODUCE)


def to_ci(argv: list[str]) -> list[str]:
    """The rule's first point: every non-ci preset name becomes ``ci`` (also inside paths)."""
    names = sorted(preset_names() - {"ci"}, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    return [pattern.sub("ci", a) for a in argv]


def make_dry_run(target: str, *flags: str) -> list[list[str]]:
    """The commands ``make -n <target>`` prints, split into argv lists."""
    assert shutil.which("make"), "the README's Quickstart needs `make`"
    proc = subprocess.run(["make", "-n", *flags, target], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line) for line in proc.stdout.splitlines() if line.strip()]


def expand(line: str) -> list[tuple[str, list[str], Path | None]]:
    """``(README line, argv, cwd override)`` for one README line, by the module docstring's rule."""
    argv = shlex.split(line, comments=True)
    if not argv:
        return []
    if argv[:1] == ["make"] and len(argv) == 2:
        out = []
        for cmd in make_dry_run(argv[1]):
            tool = Path(cmd[0]).name if cmd else ""
            if tool == "oicsr-lab":
                out += [(line, a, c) for _, a, c in expand(shlex.join(["oicsr-lab", *cmd[1:]]))]
            elif tool == "pytest":
                out.append((line,
                            [sys.executable, "-m", "pytest", *cmd[1:], "--collect-only", "-p", "no:cacheprovider"],
                            REPO))
        assert out, f"`{line}`: make -n {argv[1]} runs neither oicsr-lab nor pytest"
        return out
    if argv[0] == "source" and len(argv) == 2 and argv[1].endswith("/bin/activate"):
        venv = str(Path(argv[1]).parent.parent)
        setup = [" ".join(c) for c in make_dry_run("setup", "-B")]
        assert any(f"-m venv {venv}" in c for c in setup), f"`{line}`: `make setup` does not create {venv}: {setup}"
        return []
    if argv[0] == "oicsr-lab" or argv[:3] == ["python", "-m", "oicsr_lab"]:
        rest = argv[1:] if argv[0] == "oicsr-lab" else argv[3:]
        extra = ["--threads", "1", "--no-progress"] if rest and rest[0] in RUN_LIKE else []
        return [(line, ["oicsr-lab", *to_ci(rest), *extra], None)]
    raise AssertionError(f"README command `{line}` fits no rule of tests/test_readme.py; extend the rule or the README")


def readme_walk() -> list[tuple[str, list[str], Path | None]]:
    """Every command of the README's Quickstart block, then of its Command line block, in order."""
    text = README.read_text(encoding="utf-8")
    quick = first_bash_block(section(text, "Quickstart"))
    cli = first_bash_block(section(text, "Command line"))
    assert [shlex.split(line, comments=True)[:2] for line in quick] == [["make", "demo"], ["make", "test"]], quick
    return [step for line in (*quick, *cli) for step in expand(line)]


def test_readme_walk_runs_at_ci_scale(data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Both Quickstart commands, then every Command line example, exit 0 in a fresh folder."""
    from oicsr_lab.cli import main

    walk = readme_walk()
    subcommands = [argv[1] for _, argv, _ in walk if argv[0] == "oicsr-lab"]
    assert {"info", "train", "eval", "prune", "reproduce", "tables"} <= set(subcommands), subcommands
    env = {"OICSR_LAB_DATA": str(data_dir), "OMP_NUM_THREADS": "1", "OICSR_LAB_PROGRESS": "0"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    for line, argv, cwd in walk:
        if argv[0] == "oicsr-lab":
            capsys.readouterr()
            try:
                code = main(argv[1:])
            except SystemExit as e:  # argparse
                code = e.code
            err = capsys.readouterr().err
        else:
            proc = subprocess.run(argv, cwd=cwd or tmp_path, env={**os.environ, **env}, capture_output=True, text=True,
                                  timeout=600)
            code, err = proc.returncode, proc.stderr
        assert code == 0, f"README `{line}` -> {shlex.join(argv)} failed:\n{err[-3000:]}"
    # what the Quickstart promises `make demo` writes (its --out, under the ci rule)
    demo = next(argv for line, argv, _ in walk if line.startswith("make demo"))
    out = Path(demo[demo.index("--out") + 1]) if "--out" in demo else Path("reports/ci")
    assert (tmp_path / out / "index.html").is_file() and (tmp_path / out / "summary.json").is_file()


def presets_table() -> tuple[list[str], dict[str, list[str]]]:
    """The header and rows (by preset name) of the README's presets table."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^### Presets\s*$(.*?)(?=^#)", text, re.M | re.S)
    assert m, "README has no '### Presets' section"
    lines = [line for line in m.group(1).splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, rows = cells[0], cells[2:]
    return header, {r[0].strip("`"): r for r in rows}


def test_presets_table_matches_the_code() -> None:
    """Every preset has a row, and the row's model, data and both epoch counts are the code's."""
    from oicsr_lab.experiments.spec import REPRODUCE, build_spec
    from oicsr_lab.train.config import PRESETS, preset

    header, rows = presets_table()
    col = {name: next(i for i, h in enumerate(header) if key(h)) for name, key in {
        "model": lambda h: h == "model", "data": lambda h: h == "data",
        "train": lambda h: "train" in h and "epochs" in h, "reproduce": lambda h: "reproduce" in h and "epochs" in h,
    }.items()}
    assert set(rows) == preset_names(), f"README presets table rows {sorted(rows)} != presets {sorted(preset_names())}"
    for name, row in rows.items():
        cfg = preset(name) if name in PRESETS else None
        spec = build_spec(name)["base_config"] if name in REPRODUCE else None
        assert row[col["train"]] == (str(cfg.epochs) if cfg else "—"), (name, "train epochs")
        assert row[col["reproduce"]] == (str(spec["epochs"]) if spec else "—"), (name, "reproduce epochs")
        base = cfg.to_dict() if cfg else spec
        model = re.sub(r"[^a-z0-9.]", "", row[col["model"]].lower())
        assert model.startswith(re.sub(r"[^a-z0-9]", "", base["model"])), (name, row[col["model"]], base["model"])
        assert (f"x{base['width']:g}" in model) == (base["width"] != 1), (name, row[col["model"]], base["width"])
        data = row[col["data"]].lower()
        words = {"cifar10-sample": "sample", "cifar10": "cifar-10"}
        assert words.get(base["dataset"], base["dataset"]) in data, (name, data, base["dataset"])
        for n in (base.get("train_subset"), base.get("test_subset")):
            assert n is None or f"{n:,}" in data, (name, data, n)


def test_walk_rule_maps_presets_and_refuses_unknown_lines() -> None:
    """The rule itself: presets become ci inside paths too; an unknown command is an error, not a skip."""
    (_, argv, _), = expand("oicsr-lab eval runs/resnet20-oicsr_gl-quick --out reports/paper  # note")
    assert argv == ["oicsr-lab", "eval", "runs/resnet20-oicsr_gl-ci", "--out", "reports/ci", "--threads", "1",
                    "--no-progress"]
    (_, argv, _), = expand("oicsr-lab info --model resnet56")
    assert argv == ["oicsr-lab", "info", "--model", "resnet56"]
    with pytest.raises(AssertionError, match="fits no rule"):
        expand("curl https://example.com | sh")
