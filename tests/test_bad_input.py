"""Bad input catalogue: every bad input gives one clear line and writes or corrupts nothing.

CLI: exit code 2 and a single stderr line (``oicsr-lab <cmd>: error: ...``), no traceback, the
``--out`` folder not created and existing run files byte-for-byte unchanged. API: an
:class:`~oicsr_lab.errors.OICSRError` subclass whose one-line message names the bad thing.
Data-loading and plain ``train`` flag errors are also covered in ``test_data.py``/``test_cli.py``.
"""

from __future__ import annotations

import shutil
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from PIL import Image

from oicsr_lab.errors import CheckpointError, DataError, OICSRError, OutputError
from oicsr_lab.io import atomic_write_json, check_writable_dir
from oicsr_lab.pruning import save_pruned
from oicsr_lab.train import build_trainer, preset

from cli_helpers import run_cli

NOT_WRITABLE = Path("/proc/oicsr-lab-test/out")  # even root cannot create files under /proc


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, sample_data) -> dict[str, Path]:
    """Bad and good inputs on disk: a trained run, damaged files, image folders, a file in the way."""
    root = tmp_path_factory.mktemp("inputs")
    run = root / "run"
    trainer = build_trainer(preset("ci", epochs=1, train_subset=64), out_dir=run, data=sample_data, device="cpu",
                            show_progress=False)
    trainer.fit()
    data = (run / "checkpoint.pt").read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 3])
    (root / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 64)
    save_pruned(trainer.model, root / "pruned.pt", arch={"name": "resnet20", "kwargs": {"width": 0.25}})
    save_pruned(trainer.model, root / "other_arch.pt", arch={"name": "vgg16_bn", "kwargs": {"width": 0.25}})
    blob = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)  # a training checkpoint whose
    first = next(k for k, v in blob["model"].items() if v.dim() == 4)  # weights are those of a pruned model
    blob["model"][first] = blob["model"][first][:1]
    torch.save(blob, root / "pruned_as_training.pt")
    three = root / "three"  # a valid 3-class image folder: another class count than the run's 10
    for split, n in (("train", 4), ("test", 2)):
        for c in ("a", "b", "c"):
            (three / split / c).mkdir(parents=True)
            for i in range(n):
                image = sample_data.train.images[i].permute(1, 2, 0).numpy()
                Image.fromarray(image).save(three / split / c / f"{i}.png")
    noimg = root / "noimg"
    for split in ("train", "test"):
        (noimg / split / "cat").mkdir(parents=True)
        (noimg / split / "cat" / "README.txt").write_text("no images here\n")
    (root / "corrupt.tar.gz").write_bytes(b"\x1f\x8b" + b"\x00broken" * 100)
    (root / "file.txt").write_text("a regular file in the way\n")
    (root / "empty").mkdir()
    return {"root": root, "run": run, "three": three, "noimg": noimg}


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's CIFAR downloads fail as they do offline."""
    import torchvision.datasets as tvd

    def download(self) -> None:
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(tvd.CIFAR10, "download", download)


TRAIN_CASES = [  # (extra train flags, expected words); {root} is the inputs folder
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--model", "nope"], "unknown model 'nope'"),
    (["--reg", "nope"], "unknown regularizer 'nope'"),
    (["--reg", "gl", "--strength", "-1"], "strength must be a non-negative number"),
    (["--reg", "gl", "--strength", "abc"], "--strength: invalid float value: 'abc'"),
    (["--reg", "gl", "--strength", "nan"], "strength must be"),
    (["--reg", "gl", "--strength", "inf"], "strength must be"),
    (["--lr", "inf"], "lr must be"),
    (["--width", "inf"], "width must be"),
    (["--train-subset", "-5"], "train_subset must be"),
    (["--reg", "gl", "--reg-option", "mode=sideways"], "mode must be one of"),
    (["--data", "nope"], "unknown dataset 'nope'"),
    (["--data", "imagefolder:{root}/missing"], "{root}/missing: no such file or folder"),
    (["--data", "imagefolder:{root}/corrupt.tar.gz"], "{root}/corrupt.tar.gz: corrupt or truncated archive"),
    (["--data", "imagefolder:{root}/noimg"], "{root}/noimg: expected images"),
    (["--data", "cifar100", "--data-dir", "{root}/empty"], "cifar100: the official files are not in {root}/empty"),
    (["--out", "{root}/file.txt/sub"], "--out {root}/file.txt/sub cannot be created: {root}/file.txt is a file"),
    (["--out", "{root}/file.txt"], "--out {root}/file.txt is a file, not a folder"),
]


@pytest.mark.parametrize("flags, expect", TRAIN_CASES, ids=[" ".join(f) for f, _ in TRAIN_CASES])
def test_train_bad_input(flags, expect, inputs, data_dir, tmp_path, capsys, offline) -> None:
    """``oicsr-lab train`` with a bad flag: one line naming it, nothing written anywhere."""
    root = inputs["root"]
    flags = [f.format(root=root) for f in flags]
    before = tree_snapshot(root)
    args = ["train", "--preset", "ci", "--threads", "1", "--no-progress", "--device", "cpu", "--data-dir",
            str(data_dir),
            "--out", str(tmp_path / "run"), *flags]
    assert expect.format(root=root) in run_cli(capsys, args)
    assert not (tmp_path / "run").exists() and tree_snapshot(root) == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc as a folder nobody can write to")
def test_out_folder_nobody_can_write(inputs, data_dir, capsys) -> None:
    """An --out where files cannot be created (even as root): one line naming it, before any data is read."""
    err = run_cli(capsys, ["train", "--preset", "ci", "--data-dir", str(data_dir), "--out", str(NOT_WRITABLE)])
    assert f"--out {NOT_WRITABLE} is not writable" in err


RUN_CASES = [  # (argv with {root}/{run}, expected words, the file that must stay unchanged)
    (["train", "--preset", "ci", "--resume", "--out", "{run}", "--model", "resnet32"], "checkpoint is for",
     "checkpoint.pt"),
    (["train", "--preset", "ci", "--resume", "--out", "{run}", "--data", "imagefolder:{root}/three",
      "--batch-size", "2",
      "--val-images", "0"], "num_classes=10", "checkpoint.pt"),  # a 12-image set: no validation hold-out
    (["train", "--preset", "ci", "--resume", "--out", "{run}", "--epochs", "2"], "truncated or corrupt", "truncated"),
    (["eval", "{root}/truncated.pt"], "truncated or corrupt", None),
    (["eval", "{root}/garbage.pt"], "truncated or corrupt", None),
    (["eval", "{root}/pruned.pt"], "records no data set; pass --data", None),
    (["eval", "{run}", "--data", "imagefolder:{root}/three"], "has 10 classes", None),
    (["prune", "--from", "{root}/truncated.pt", "--target", "0.3", "--out", "{out}"], "truncated.pt", None),
    (["prune", "--from", "{root}/other_arch.pt", "--target", "0.3", "--out", "{out}"], "architecture mismatch", None),
    (["prune", "--from", "{run}", "--target", "0.3", "--out", "{root}/file.txt/p"], "is a file, not a folder", None),
    (["reproduce", "--preset", "nope", "--out", "{out}"], "invalid choice: 'nope'", None),
    (["reproduce", "--preset", "ci", "--regs", "l2,nope", "--out", "{out}"], "unknown regulariser", None),
    (["reproduce", "--preset", "ci", "--strength", "gl=-1", "--out", "{out}"], "strength must be", None),
    (["reproduce", "--preset", "ci", "--strength", "gl=abc", "--out", "{out}"], "REG=VALUE", None),
    (["reproduce", "--preset", "ci", "--ratios", "0.1,1.5", "--out", "{out}"], "ratios must lie in (0, 1)", None),
    (["reproduce", "--preset", "ci", "--out", "{root}/file.txt/r"], "is a file, not a folder", None),
    (["prune", "--from", "{run}", "--target", "1.5", "--out", "{out}"], "target ratio must be in (0, 1)", None),
    (["prune", "--from", "{run}", "--target", "0.3", "--max-layer-ratio", "0.01", "--retrain-epochs", "0",
      "--out", "{out}"], "is unreachable", None),
    (["eval", "{root}/pruned_as_training.pt"], "weights do not fit resnet20 (size mismatch", None),
    (["prune", "--from", "{root}/pruned_as_training.pt", "--target", "0.3", "--out", "{out}"], "save_pruned .pt", None),
]


@pytest.mark.parametrize("argv, expect, keep", RUN_CASES, ids=[str(i) for i in range(len(RUN_CASES))])
def test_checkpoint_and_pipeline_bad_input(argv, expect, keep, inputs, data_dir, tmp_path, capsys) -> None:
    """Checkpoints of another architecture/class count, damaged checkpoints, bad prune/reproduce options."""
    run = tmp_path / "run"
    shutil.copytree(inputs["run"], run)
    if keep == "truncated":
        (run / "checkpoint.pt").write_bytes((inputs["root"] / "truncated.pt").read_bytes())
    before, inputs_before = tree_snapshot(run), tree_snapshot(inputs["root"])
    argv = [a.format(root=inputs["root"], run=run, out=tmp_path / "out") for a in argv]
    extra = ["--threads", "1", "--no-progress", "--device", "cpu", "--data-dir", str(data_dir)]
    assert expect in run_cli(capsys, [*argv, *extra])
    assert not (tmp_path / "out").exists()
    assert tree_snapshot(run) == before and tree_snapshot(inputs["root"]) == inputs_before


def test_real_entry_point_prints_one_line(inputs, data_dir, tmp_path) -> None:
    """The installed command (a fresh process, warnings on): exit code 2 and exactly one stderr line."""
    import subprocess

    script = Path(sys.executable).with_name("oicsr-lab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "oicsr_lab"]
    for flags in (["--model", "nope"], ["--out", str(inputs["root"] / "file.txt" / "sub")]):
        proc = subprocess.run([*cmd, "train", "--preset", "ci", "--data-dir", str(data_dir), "--out",
                               str(tmp_path / "o"),
                               *flags], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


# -- the API -----------------------------------------------------------------------------------
def one_line(excinfo: pytest.ExceptionInfo, *names: str) -> str:
    """The error is an OICSRError on one line naming every one of ``names``."""
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, OICSRError) and "\n" not in msg, msg
    assert all(n in msg for n in names), msg
    return msg


def test_trainer_out_dir_not_writable_fails_before_training(inputs, sample_data) -> None:
    """Trainer(out_dir=<under a file>) raises OutputError (an OICSRError and OSError) at construction."""
    bad = inputs["root"] / "file.txt" / "run"
    before = tree_snapshot(inputs["root"])
    with pytest.raises(OutputError) as ei:
        build_trainer(preset("ci", epochs=1, train_subset=64), out_dir=bad, data=sample_data, device="cpu")
    one_line(ei, str(bad), "file.txt")
    assert isinstance(ei.value, OSError) and tree_snapshot(inputs["root"]) == before


def test_atomic_write_under_a_file_names_the_folder(inputs) -> None:
    """Atomic writers raise OutputError naming the blocking file; the writability check creates nothing."""
    with pytest.raises(OutputError) as ei:
        atomic_write_json(inputs["root"] / "file.txt" / "x" / "result.json", {"a": 1})
    one_line(ei, str(inputs["root"] / "file.txt"))
    fresh = inputs["root"] / "new" / "deeper"
    assert check_writable_dir(fresh) == fresh and not (inputs["root"] / "new").exists()


class _Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv3d(3, 4, 1)

    def forward(self, x):
        return self.c(x.unsqueeze(2)).squeeze(2).mean((2, 3))


class _GroupNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c, self.n, self.f = nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.f(self.n(self.c(x)).mean((2, 3)))


class _SliceNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c, self.f = nn.Conv2d(3, 4, 3), nn.Linear(2, 2)

    def forward(self, x):
        return self.f(self.c(x)[:, :2].mean((2, 3)))


class _LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c, self.rnn = nn.Conv2d(3, 4, 3), nn.LSTM(4, 4)

    def forward(self, x):
        return self.rnn(self.c(x).flatten(2).permute(2, 0, 1))[0]


@pytest.mark.parametrize("net, names", [
    (_Conv3dNet, ["'c'", "Conv3d"]), (_GroupNormNet, ["'n'", "GroupNorm"]), (_SliceNet, ["getitem", "channel"]),
    (_LSTMNet, ["permute"]),
])
def test_unsupported_layer_names_the_node(net, names, capfd) -> None:
    """find_groups on a user model with an unsupported layer or op: UnsupportedModelError naming it."""
    from oicsr_lab.errors import UnsupportedModelError
    from oicsr_lab.groups import find_groups

    with pytest.raises(UnsupportedModelError) as ei:
        find_groups(net(), torch.randn(1, 3, 8, 8))
    one_line(ei, *names)
    assert capfd.readouterr().err == ""


def test_wrong_example_input_is_one_line_and_silent(capfd) -> None:
    """An example input the model cannot take: the failing node and torch's reason, no traceback printed."""
    from oicsr_lab.errors import UnsupportedModelError
    from oicsr_lab.groups import find_groups
    from oicsr_lab.models import build_model

    with pytest.raises(UnsupportedModelError) as ei:
        find_groups(build_model("resnet20", width=0.25), torch.randn(1, 4, 32, 32))
    one_line(ei, "node 'conv1'", "expected input", "example_input")
    assert capfd.readouterr().err == ""  # torch's ShapeProp used to print two tracebacks here


@pytest.mark.parametrize("kind, names", [
    ("truncated", ["truncated or corrupt"]), ("garbage", ["truncated or corrupt"]),
    ("training", ["not an oicsr pruned checkpoint"]), ("other_arch", ["architecture mismatch", "vgg16_bn"]),
    ("missing", ["does not exist"]),
])
def test_load_pruned_errors(kind, names, inputs) -> None:
    """load_pruned on damaged files, a training checkpoint, another architecture, no file: CheckpointError."""
    from oicsr_lab.pruning import load_pruned

    path = {"training": inputs["run"] / "checkpoint.pt", "missing": inputs["root"] / "nope.pt"}.get(
        kind, inputs["root"] / f"{kind}.pt")
    with pytest.raises(CheckpointError) as ei:
        load_pruned(path)
    one_line(ei, str(path), *names)


@pytest.mark.parametrize("call, names", [
    (lambda: __import__("oicsr_lab.models", fromlist=["x"]).build_model("nope"), ["'nope'"]),
    (lambda: __import__("oicsr_lab.models", fromlist=["x"]).build_model("torchvision:nope"), ["'nope'"]),
    (lambda: preset("nope"), ["'nope'", "ci"]),
    (lambda: preset("ci", strength=float("inf")), ["strength"]),
    (lambda: preset("ci", lr=float("nan")), ["lr"]),
    (lambda: preset("ci", test_subset=0), ["test_subset"]),
])
def test_api_config_errors(call, names) -> None:
    """Unknown names and non-finite or negative values: ConfigError (a ValueError) naming the field."""
    with pytest.raises(ValueError) as ei:
        call()
    one_line(ei, *names)


def test_missing_or_corrupt_dataset_offline(inputs, offline, tmp_path) -> None:
    """load_dataset offline without files, with corrupt official files, or an empty image folder: DataError."""
    from oicsr_lab.data import load_dataset

    corrupt = tmp_path / "cifar-10-batches-py"
    corrupt.mkdir()
    (corrupt / "data_batch_1").write_bytes(b"\x80garbage")
    for name, root, names in (("cifar100", inputs["root"] / "empty", ["cifar100", "could not be downloaded"]),
                              ("cifar10", tmp_path, ["cifar10", str(tmp_path)]),
                              (f"imagefolder:{inputs['noimg']}", tmp_path, [str(inputs["noimg"]), "no images"])):
        with pytest.raises(DataError) as ei:
            load_dataset(name, root=root)
        one_line(ei, *names)
    assert not any((inputs["root"] / "empty").iterdir())


@pytest.mark.parametrize("x, names", [
    (torch.randn(1, 4, 32, 32), ["CifarResNet", "(1, 4, 32, 32)", "expected input"]),
    (torch.randn(3, 32, 32), ["(3, 32, 32)", "4D"]),
    ("x", ["example_input must be a tensor"]),
])
def test_count_flops_wrong_input(x, names, capfd) -> None:
    """count_flops on an input the model cannot take: a one-line ConfigError with torch's reason, nothing printed."""
    from oicsr_lab.flops import count_flops
    from oicsr_lab.models import build_model

    with pytest.raises(ValueError) as ei:
        count_flops(build_model("resnet20", width=0.25), x)
    one_line(ei, *names)
    assert capfd.readouterr().err == ""


def test_groups_of_another_model() -> None:
    """Groups traced from another model (the dense one, another width or architecture) used with channel_energy
    or global_greedy_plan: a one-line ConfigError naming the module, not an IndexError or a silently wrong plan."""
    from oicsr_lab.errors import ConfigError
    from oicsr_lab.groups import find_groups
    from oicsr_lab.importance import channel_energy
    from oicsr_lab.models import build_model
    from oicsr_lab.pruning import global_greedy_plan, prune

    x = torch.randn(1, 3, 32, 32)
    dense = build_model("resnet20", width=0.25)
    groups = find_groups(dense, x)
    scores = channel_energy(dense, groups)
    pruned = prune(dense, global_greedy_plan(dense, groups, scores, 0.3, example_input=x))
    wider, vgg = build_model("resnet20", width=0.5), build_model("vgg16_bn", width=0.25)
    calls = [lambda m=m: channel_energy(m, groups) for m in (pruned, wider, vgg)]
    calls += [lambda m=m: global_greedy_plan(m, groups, scores, 0.2, example_input=x) for m in (pruned, wider, vgg)]
    calls += [lambda m=m: channel_energy(m, list(groups)) for m in (pruned, vgg)]  # a plain list: indices and names
    for call in calls:
        with pytest.raises(ConfigError) as ei:
            call()
        one_line(ei, "find_groups", "'")


def test_prune_from_run_on_data_with_other_class_count(inputs, data_dir, tmp_path, capsys) -> None:
    """``prune --from`` a 10-class run with ``--data`` of 3 classes: one line, before any training or writing."""
    import numpy as np
    from PIL import Image

    tree = tmp_path / "three"
    for split in ("train", "test"):
        for c in ("a", "b", "c"):
            (tree / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((32, 32, 3), 40 * i + 10, np.uint8)).save(tree / split / c / f"{i}.png")
    run = tmp_path / "run"
    shutil.copytree(inputs["run"], run)
    before = tree_snapshot(run)
    err = run_cli(capsys, ["prune", "--from", str(run), "--data", f"imagefolder:{tree}", "--target", "0.3",
                           "--out", str(tmp_path / "out"), "--threads", "1", "--no-progress", "--device", "cpu",
                           "--data-dir", str(data_dir)])
    assert "10 outputs but" in err and "3 classes" in err
    assert not (tmp_path / "out").exists() and tree_snapshot(run) == before
