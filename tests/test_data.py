"""Data sets: the shipped sample, ImageFolder dirs/archives, the tensor cache, errors, CIFAR fallback, roots."""

from __future__ import annotations

import socket
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import oicsr_lab.data.datasets as datasets_mod
import oicsr_lab.data.imagefolder as imagefolder_mod
from oicsr_lab.data import data_root, find_cifar10_archive, load_dataset, sample_path
from oicsr_lab.errors import DataError

REPO = Path(__file__).resolve().parents[1]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# -- helpers ---------------------------------------------------------------------------------
def write_tree(root: Path, sample, classes=("cat", "dog", "ship"), n_train: int = 3, n_test: int = 2) -> dict:
    """Write a small lossless (PNG) ImageFolder tree from sample images; return the expected tensors."""
    expected: dict = {"classes": sorted(classes)}
    for split, n, src in (("train", n_train, sample.train), ("test", n_test, sample.test)):
        xs, ys = [], []
        for ci, cls in enumerate(sorted(classes)):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            imgs = src.images[src.labels == ci][:n]
            for i, im in enumerate(imgs):
                Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
                xs.append(im)
                ys.append(ci)
        expected[split] = (torch.stack(xs), torch.tensor(ys))
    return expected


def make_tar(src: Path, out: Path, prefix: str) -> Path:
    """Pack the folder ``src`` as ``out`` (.tar.gz) with every member under ``prefix/``."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname=prefix)
    return out


def make_zip(src: Path, out: Path, prefix: str) -> Path:
    """Pack the folder ``src`` as ``out`` (.zip) under ``prefix/``, plus a macOS resource fork to skip."""
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, f"{prefix}/{p.relative_to(src).as_posix()}")
        zf.writestr(f"__MACOSX/{prefix}/train/cat/._000.png", b"\x00\x05\x16\x07 not an image")
    return out


def same_content(ds, expected: dict) -> None:
    """Assert a loaded data set holds exactly the expected classes, images and labels (order-free)."""
    assert ds.classes == expected["classes"]
    for split in ("train", "test"):
        got, (x, y) = getattr(ds, split), expected[split]
        assert got.images.dtype == torch.uint8 and got.images.shape == x.shape
        key = lambda imgs, labels: sorted((int(lab), im.numpy().tobytes()) for im, lab in zip(imgs, labels))  # noqa: E731
        assert key(got.images, got.labels) == key(x, y)


def one_line_error(excinfo: pytest.ExceptionInfo, path: Path, *fix_words: str) -> str:
    """Check a DataError message is one line, names ``path`` and says how to fix it."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    assert any(w in msg for w in fix_words), msg
    return msg


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any socket connection fail, as on an offline machine."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, sample_data) -> tuple[Path, dict]:
    """A small ImageFolder folder (3 classes, 9 train / 6 test PNGs) and what it should decode to."""
    root = tmp_path_factory.mktemp("tree") / "mini"
    return root, write_tree(root, sample_data)


# -- the shipped sample ----------------------------------------------------------------------
def test_sample_shape_and_balance(sample_data) -> None:
    """5,000 train / 1,000 test uint8 32x32 RGB images, 10 balanced CIFAR-10 classes."""
    assert sample_data.name == "cifar10-sample" and sample_data.classes == CIFAR_CLASSES
    assert sample_data.train.images.shape == (5000, 3, 32, 32) and sample_data.test.images.shape == (1000, 3, 32, 32)
    assert sample_data.train.images.dtype == torch.uint8 and sample_data.train.labels.dtype == torch.int64
    assert sample_data.train.labels.bincount().tolist() == [500] * 10
    assert sample_data.test.labels.bincount().tolist() == [100] * 10
    assert sample_data.num_classes == 10 and sample_data.input_size == 32
    assert sample_data.example_input(2).shape == (2, 3, 32, 32)


def test_sample_provenance_documented() -> None:
    """The sample ships in the package and scripts/make_sample.py says how it was drawn."""
    assert sample_path().is_file() and sample_path().stat().st_size > 100_000
    doc = (REPO / "scripts" / "make_sample.py").read_text()
    assert "cifar10-jpeg.tar.gz" in doc and "random.Random(0)" in doc and "class-balanced" in doc


@pytest.mark.archive
def test_sample_is_reproducible_from_archive(archive_path: Path, tmp_path: Path) -> None:
    """Rerunning scripts/make_sample.py on the full archive gives the shipped file byte for byte."""
    import subprocess
    import sys

    out = tmp_path / "any-name.tar.gz"  # the gzip header stores no file name, so any output name works
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample.py"), str(archive_path), "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    assert out.read_bytes() == sample_path().read_bytes()


def test_sample_loads_offline_and_cache_is_reused(tmp_path: Path, no_network, monkeypatch) -> None:
    """Offline first load decodes and writes one cache file atomically; the second load decodes nothing."""
    first = load_dataset("cifar10-sample", root=tmp_path)
    files = sorted(p.name for p in (tmp_path / ".oicsr-cache").iterdir())
    assert len(files) == 1 and files[0].endswith(".pt") and not files[0].startswith(".")  # no temp file left
    blob = torch.load(tmp_path / ".oicsr-cache" / files[0], weights_only=True)
    assert torch.equal(blob["train_x"], first.train.images)

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(imagefolder_mod, "_decode", fail)
    second = load_dataset("cifar10-sample", root=tmp_path)
    assert torch.equal(second.train.images, first.train.images) and torch.equal(second.test.labels, first.test.labels)


# -- ImageFolder: folder, zip, tar.gz --------------------------------------------------------
def test_imagefolder_directory(tree, tmp_path: Path) -> None:
    """A folder with train/ and test/ class folders decodes to the exact pixels."""
    root, expected = tree
    ds = load_dataset(f"imagefolder:{root}", root=tmp_path)
    same_content(ds, expected)
    assert ds.num_classes == 3 and ds.source == str(root)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_imagefolder_archives(tree, tmp_path: Path, kind: str) -> None:
    """The same tree packed as .zip or .tar.gz (one folder level down) decodes identically."""
    root, expected = tree
    out = tmp_path / f"mini.{kind}"
    (make_zip if kind == "zip" else make_tar)(root, out, "mini")
    same_content(load_dataset(f"imagefolder:{out}", root=tmp_path / "data"), expected)


def test_imagefolder_relative_to_data_root(tree, tmp_path: Path) -> None:
    """A relative imagefolder path is looked up in the data root."""
    root, expected = tree
    make_tar(root, tmp_path / "mini.tar.gz", "mini")
    same_content(load_dataset("imagefolder:mini.tar.gz", root=tmp_path), expected)


def test_folder_cache_sees_edits_in_subfolders(tmp_path: Path, sample_data) -> None:
    """Adding an image deep in a class folder invalidates the folder's cache."""
    root = tmp_path / "tree"
    write_tree(root, sample_data, n_train=2, n_test=1)
    assert len(load_dataset(f"imagefolder:{root}", root=tmp_path).train) == 6
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "cat" / "new.png")
    assert len(load_dataset(f"imagefolder:{root}", root=tmp_path).train) == 7


def test_corrupt_cache_is_rebuilt(tree, tmp_path: Path) -> None:
    """A garbage or stale-version cache file is ignored, rebuilt and replaced."""
    root, expected = tree
    load_dataset(f"imagefolder:{root}", root=tmp_path)
    (cache,) = (tmp_path / ".oicsr-cache").glob("*.pt")
    for bad in (b"not a torch file", None):
        if bad is None:  # a valid file from an older cache format
            blob = torch.load(cache, weights_only=True)
            torch.save({**blob, "version": -1}, cache)
        else:
            cache.write_bytes(bad)
        same_content(load_dataset(f"imagefolder:{root}", root=tmp_path), expected)
        assert torch.load(cache, weights_only=True)["version"] == datasets_mod.CACHE_VERSION


def test_failed_decode_writes_no_cache(tmp_path: Path, sample_data) -> None:
    """When decoding fails nothing (not even a temp file) is left in the cache folder."""
    root = tmp_path / "tree"
    write_tree(root, sample_data, n_train=1, n_test=1)
    (root / "test" / "dog" / "000.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError):
        load_dataset(f"imagefolder:{root}", root=tmp_path / "data")
    assert list((tmp_path / "data" / ".oicsr-cache").iterdir()) == []


# -- errors: one line, names the path, says how to fix it ------------------------------------
def test_missing_path(tmp_path: Path) -> None:
    """A path that does not exist."""
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as ei:
        load_dataset(f"imagefolder:{missing}", root=tmp_path)
    one_line_error(ei, missing, "check the path", "--data-dir")


def test_empty_folder_and_folder_without_images(tmp_path: Path) -> None:
    """An empty folder, and one holding only non-image files in the right layout."""
    empty = tmp_path / "empty"
    empty.mkdir()
    noimg = tmp_path / "noimg"
    (noimg / "train" / "cat").mkdir(parents=True)
    (noimg / "test" / "cat").mkdir(parents=True)
    (noimg / "train" / "cat" / "readme.txt").write_text("hello")
    for path in (empty, noimg):
        with pytest.raises(DataError) as ei:
            load_dataset(f"imagefolder:{path}", root=tmp_path)
        assert "no images" in one_line_error(ei, path, "check the folder layout")


def test_only_train_split(tmp_path: Path, sample_data) -> None:
    """A folder with train/ but no test/ or val/ says what it found."""
    root = tmp_path / "tree"
    write_tree(root, sample_data, n_train=1, n_test=1)
    for p in (root / "test").rglob("*.png"):
        p.unlink()
    with pytest.raises(DataError) as ei:
        load_dataset(f"imagefolder:{root}", root=tmp_path)
    assert "train: 3" in one_line_error(ei, root, "check the folder layout")


@pytest.mark.parametrize("kind", ["truncated.tar.gz", "garbage.tar.gz", "garbage.zip", "truncated.zip", "plain.txt"])
def test_corrupt_archive(tree, tmp_path: Path, kind: str) -> None:
    """Truncated or garbage archives, and a file that is no archive at all."""
    root, _ = tree
    path = tmp_path / kind
    if kind.startswith("truncated"):
        full = (make_zip if kind.endswith("zip") else make_tar)(root, tmp_path / f"full.{kind.split('.', 1)[1]}", "m")
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"this is not an archive\n" * 50)
    with pytest.raises(DataError) as ei:
        load_dataset(f"imagefolder:{path}", root=tmp_path / "data")
    one_line_error(ei, path, "re-create", "re-download", "pass an ImageFolder")


def test_corrupt_image_names_the_file(tmp_path: Path, sample_data) -> None:
    """An undecodable image inside a tar.gz: the message names the archive and the member."""
    root = tmp_path / "tree"
    write_tree(root, sample_data, n_train=1, n_test=1)
    (root / "train" / "cat" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    archive = make_tar(root, tmp_path / "bad.tar.gz", "bad")
    with pytest.raises(DataError) as ei:
        load_dataset(f"imagefolder:{archive}", root=tmp_path / "data")
    assert "bad/train/cat/000.png" in one_line_error(ei, archive, "replace or delete")


def test_unknown_dataset_name(tmp_path: Path) -> None:
    """An unknown name lists the valid ones."""
    with pytest.raises(DataError, match="cifar10-sample"):
        load_dataset("mnist", root=tmp_path)


# -- cifar10 without the official files ------------------------------------------------------
@pytest.fixture()
def offline_torchvision(monkeypatch: pytest.MonkeyPatch, no_network) -> list:
    """torchvision's CIFAR downloads raise as they would offline; returns the list of attempts."""
    import torchvision.datasets as tvd

    attempts: list = []
    monkeypatch.delenv("OICSR_LAB_OFFLINE", raising=False)  # the tests that need it set it themselves

    def download(self) -> None:
        attempts.append(type(self).__name__)
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(tvd.CIFAR10, "download", download)
    return attempts


def test_cifar10_falls_back_to_archive(tmp_path: Path, sample_data, offline_torchvision) -> None:
    """No official files + no network + a CIFAR-10 archive in the data root: the archive is used, and said so."""
    tree_root = tmp_path / "src"
    expected = write_tree(tree_root, sample_data, classes=CIFAR_CLASSES, n_train=2, n_test=1)
    make_tar(tree_root, tmp_path / "cifar10-jpeg.tar.gz", "cifar10")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"partial official download")  # must not be picked
    assert find_cifar10_archive(tmp_path) == tmp_path / "cifar10-jpeg.tar.gz"
    with pytest.warns(UserWarning, match="cifar10-jpeg.tar.gz"):
        ds = load_dataset("cifar10", root=tmp_path)
    assert offline_torchvision == ["CIFAR10"]
    assert ds.name == "cifar10" and ds.source == str(tmp_path / "cifar10-jpeg.tar.gz")
    assert any("download failed" in n and "cifar10-jpeg.tar.gz" in n for n in ds.notes)
    same_content(ds, expected)


def test_cifar_without_files_or_archive(tmp_path: Path, offline_torchvision) -> None:
    """cifar10/cifar100 with nothing local and no network: one-line DataError naming the root and the fix."""
    for name in ("cifar10", "cifar100"):
        with pytest.raises(DataError) as ei:
            load_dataset(name, root=tmp_path)
        msg = one_line_error(ei, tmp_path, "OICSR_LAB_DATA")
        assert ("ImageFolder archive" in msg) == (name == "cifar10")
    assert offline_torchvision == ["CIFAR10", "CIFAR100"]
    with pytest.raises(DataError, match="download disabled"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_offline_env_never_tries_a_download(tmp_path: Path, sample_data, offline_torchvision,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """OICSR_LAB_OFFLINE=1: no download attempt at all; the archive is used, and the note says why."""
    tree_root = tmp_path / "src"
    expected = write_tree(tree_root, sample_data, classes=CIFAR_CLASSES, n_train=2, n_test=1)
    make_tar(tree_root, tmp_path / "cifar10-jpeg.tar.gz", "cifar10")
    monkeypatch.setenv("OICSR_LAB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="download disabled"):
        ds = load_dataset("cifar10", root=tmp_path)
    assert offline_torchvision == []
    same_content(ds, expected)
    monkeypatch.setenv("OICSR_LAB_OFFLINE", "0")
    with pytest.warns(UserWarning, match="download failed"):
        load_dataset("cifar10", root=tmp_path)
    assert offline_torchvision == ["CIFAR10"]


# -- the data root ---------------------------------------------------------------------------
def test_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--data-dir (root=) beats $OICSR_LAB_DATA, which beats the user cache dir."""
    from platformdirs import user_cache_dir

    monkeypatch.setenv("OICSR_LAB_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("OICSR_LAB_DATA")
    assert data_root() == Path(user_cache_dir("oicsr-lab"))


def test_caches_go_to_the_chosen_root(tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With both set, the cache lands under root=, never under $OICSR_LAB_DATA."""
    root, _ = tree
    monkeypatch.setenv("OICSR_LAB_DATA", str(tmp_path / "env"))
    load_dataset(f"imagefolder:{root}", root=tmp_path / "flag")
    assert list((tmp_path / "flag" / ".oicsr-cache").glob("*.pt")) and not (tmp_path / "env").exists()
    load_dataset(f"imagefolder:{root}")
    assert list((tmp_path / "env" / ".oicsr-cache").glob("*.pt"))


# -- the full archive ------------------------------------------------------------------------
@pytest.mark.archive
def test_full_archive_via_env(archive_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cifar10 from $OICSR_LAB_DATA/cifar10-jpeg.tar.gz: 50,000 train / 10,000 test, balanced."""
    monkeypatch.setenv("OICSR_LAB_DATA", str(archive_path.parent))
    with pytest.warns(UserWarning, match="ImageFolder archive"):
        ds = load_dataset("cifar10", download=False)
    assert ds.classes == CIFAR_CLASSES and ds.source == str(archive_path)
    assert ds.train.images.shape == (50000, 3, 32, 32) and ds.test.images.shape == (10000, 3, 32, 32)
    assert ds.train.labels.bincount().tolist() == [5000] * 10 and ds.test.labels.bincount().tolist() == [1000] * 10
