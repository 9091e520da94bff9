"""Large ImageFolder data streamed from disk: choosing the path, transforms, loaders, evaluate top-5, Trainer,
errors."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import oicsr_lab.data.streaming as streaming_mod
from oicsr_lab.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetSplits,
    Split,
    StreamingLoader,
    StreamingSplits,
    TensorLoader,
    load_dataset,
    make_loader,
    resolve_workers,
)
from oicsr_lab.errors import ConfigError, DataError
from oicsr_lab.models import build_model
from oicsr_lab.train import TrainConfig, Trainer, evaluate, load_checkpoint

CLASSES = ("ant", "bee", "cat")
SIZE = 64  # input size for the tests (the default is 224)


def write_tree(root: Path, side: int = 96, n_train: int = 4, n_test: int = 4, test_name: str = "val") -> Path:
    """An ImageFolder tree of deterministic random images (PNG and JPEG), 3 classes."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), (test_name, n_test)):
        for ci, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h = side if i % 2 else side + 8  # non-square images too
                im = Image.fromarray(rng.integers(0, 256, (h, side, 3), dtype=np.uint8))
                im.save(folder / f"{i:02d}.{'jpg' if i == 1 else 'png'}")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 images of 96 px or so: 12 train, 12 val."""
    return write_tree(tmp_path_factory.mktemp("big") / "imagenet-mini")


@pytest.fixture(scope="module")
def data(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> StreamingSplits:
    return load_dataset(f"imagefolder:{tree}", root=tmp_path_factory.mktemp("root"), input_size=SIZE)


def folder_labels(split) -> list[int]:
    """The label each path's class folder implies."""
    return [CLASSES.index(Path(os.fsdecode(p)).parent.name) for p in split.paths]


@pytest.fixture()
def mixed_small(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "small", side=32, n_train=2, n_test=1, test_name="test")
    for p in sorted(root.rglob("*")):  # one size, so the in-memory decoder accepts it
        if p.is_file():
            Image.open(p).convert("RGB").resize((32, 32)).save(p.with_suffix(".png"))
            if p.suffix != ".png":
                p.unlink()
    return root


# -- choosing the path -----------------------------------------------------------------------
def test_large_images_stream_automatically(data: StreamingSplits, tree: Path) -> None:
    """A folder of >64 px images gives StreamingSplits with the attributes the library reads."""
    assert isinstance(data, StreamingSplits)
    assert data.classes == list(CLASSES) and data.num_classes == 3 and data.source == str(tree)
    assert (data.mean, data.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert data.input_size == SIZE and data.example_input(2).shape == (2, 3, SIZE, SIZE)
    assert len(data.train) == len(data.test) == 12
    for split in (data.train, data.test):
        assert split.labels.dtype == torch.int64 and split.labels.tolist() == folder_labels(split)
    sub = data.train.subset(5, seed=1)
    assert len(sub) == 5 and sub.labels.tolist() == folder_labels(sub)
    assert data.train.subset(None) is data.train and data.train.subset(99) is data.train


def test_default_input_size_is_224(tree: Path, tmp_path: Path) -> None:
    data = load_dataset(f"imagefolder:{tree}", root=tmp_path)
    assert data.input_size == 224
    x, y = next(iter(make_loader(data.test, 4, data.mean, data.std, input_size=224, num_workers=0)))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and y.tolist() == [0, 0, 0, 0]


def test_stream_flag_and_small_images(mixed_small: Path, tmp_path: Path) -> None:
    """Small images stay in memory unless stream=True; stream=False (or size=) keeps large ones in memory."""
    small = mixed_small
    mem = load_dataset(f"imagefolder:{small}", root=tmp_path)
    assert isinstance(mem, DatasetSplits) and mem.input_size == 32
    streamed = load_dataset(f"imagefolder:{small}", root=tmp_path, stream=True, input_size=24)
    assert isinstance(streamed, StreamingSplits) and len(streamed.train) == 6 and len(streamed.test) == 3
    big = write_tree(tmp_path / "big", side=72, n_train=1, n_test=1)
    forced = load_dataset(f"imagefolder:{big}", root=tmp_path, stream=False, size=16)
    assert isinstance(forced, DatasetSplits) and forced.train.images.shape == (3, 3, 16, 16)
    # size= resizes in memory
    assert isinstance(load_dataset(f"imagefolder:{big}", root=tmp_path, size=16), DatasetSplits)
    with pytest.raises(ConfigError, match="input_size"):
        load_dataset(f"imagefolder:{big}", root=tmp_path, stream=True, size=16)
    with pytest.raises(ConfigError, match="imagefolder"):
        load_dataset("cifar10-sample", root=tmp_path, stream=True)


def test_many_files_stream(mixed_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More files than the threshold stream even when the images are small."""
    assert isinstance(load_dataset(f"imagefolder:{mixed_small}", root=tmp_path), DatasetSplits)
    monkeypatch.setattr(streaming_mod, "STREAM_MIN_FILES", 5)
    assert isinstance(load_dataset(f"imagefolder:{mixed_small}", root=tmp_path), StreamingSplits)


def test_eval_only_folder(tmp_path: Path) -> None:
    """val/ without train/: an empty train split, a note, and evaluation works."""
    root = write_tree(tmp_path / "valonly", n_train=1, n_test=2)
    for p in sorted((root / "train").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (root / "train").rmdir()
    data = load_dataset(f"imagefolder:{root}", root=tmp_path, input_size=32)
    assert len(data.train) == 0 and len(data.test) == 6 and data.classes == list(CLASSES)
    assert any("evaluation only" in n for n in data.notes)


# -- loaders ---------------------------------------------------------------------------------
def test_make_loader_keeps_tensor_loader_for_memory() -> None:
    split = Split(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.arange(8))
    assert type(make_loader(split, 4, (0.5,) * 3, (0.5,) * 3)) is TensorLoader


def test_train_batches_are_deterministic_across_workers(data: StreamingSplits) -> None:
    """Shuffle + augmentation depend on (seed, epoch, image) only: 0 or 2 workers give the same batches."""
    def epoch_batches(workers: int, epoch: int):
        loader = make_loader(data.train, 4, data.mean, data.std, shuffle=True, augment=True, drop_last=True, seed=3,
                             input_size=SIZE, num_workers=workers)
        loader.set_epoch(epoch)
        out = [(x.clone(), y.clone()) for x, y in loader]
        del loader
        return out

    state = torch.get_rng_state()
    a0 = epoch_batches(0, 0)
    assert torch.equal(torch.get_rng_state(), state)  # per-image seeding leaves the global RNG (dropout...) alone
    b0, a1 = epoch_batches(2, 0), epoch_batches(0, 1)
    assert len(a0) == 3 and all(x.shape == (4, 3, SIZE, SIZE) for x, _ in a0)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a0, b0))
    assert not all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a0, a1))  # a new epoch draws anew
    assert sorted(torch.cat([y for _, y in a0]).tolist()) == sorted(data.train.labels.tolist())


def test_test_transform_matches_torchvision(data: StreamingSplits) -> None:
    """Test batches equal Resize + CenterCrop + ToTensor + Normalize, in order, with the right labels."""
    from torchvision import transforms as T

    ref = T.Compose([T.Resize(round(SIZE * 256 / 224)), T.CenterCrop(SIZE), T.ToTensor(),
                     T.Normalize(data.mean, data.std)])
    loader = make_loader(data.test, 5, data.mean, data.std, input_size=SIZE, num_workers=0)
    xs, ys = zip(*loader)
    assert [len(y) for y in ys] == [5, 5, 2]
    x, y = torch.cat(xs), torch.cat(ys)
    want = torch.stack([ref(Image.open(os.fsdecode(p)).convert("RGB")) for p in data.test.paths])
    assert torch.allclose(x, want, atol=1e-5) and y.tolist() == data.test.labels.tolist()


def test_ddp_shards(data: StreamingSplits) -> None:
    """Under DDP each rank gets its share: training shards are disjoint, evaluation shards cover the split once."""
    def labels_of(rank: int, train: bool) -> list[int]:
        loader = make_loader(data.train if train else data.test, 4, data.mean, data.std, shuffle=train, augment=train,
                             drop_last=train, seed=1, rank=rank, world_size=2, input_size=SIZE, num_workers=0)
        assert isinstance(loader, StreamingLoader) and loader.sharded and loader.loader.batch_size == 2
        return [i for _, y in loader for i in y.tolist()]

    assert len(labels_of(0, True)) == len(labels_of(1, True)) == 6
    assert sorted(labels_of(0, False) + labels_of(1, False)) == sorted(data.test.labels.tolist())


def test_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OICSR_LAB_WORKERS", raising=False)
    assert 0 <= resolve_workers() <= 8
    monkeypatch.setenv("OICSR_LAB_WORKERS", "3")
    assert resolve_workers() == 3 and resolve_workers(1) == 1
    monkeypatch.setenv("OICSR_LAB_WORKERS", "many")
    with pytest.raises(ConfigError, match="OICSR_LAB_WORKERS"):
        resolve_workers()
    with pytest.raises(ConfigError):
        resolve_workers(-1)


# -- evaluate and train ----------------------------------------------------------------------
class Constant(torch.nn.Module):
    """Always ranks class 2, then 1, then 0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.0, 1.0, 2.0]).expand(len(x), 3) + self.w


def test_evaluate_top1_top5(data: StreamingSplits, sample_data) -> None:
    """acc stays top-1; topk adds acc<k> (k above the class count counts every image)."""
    res = evaluate(Constant(), data, topk=(1, 2, 5), num_workers=0, batch_size=5)
    assert res.keys() == {"acc", "loss", "acc2", "acc5"}
    assert res["acc"] == pytest.approx(100 / 3) and res["acc2"] == pytest.approx(200 / 3) and res["acc5"] == 100.0
    assert evaluate(Constant(), data, num_workers=0).keys() == {"acc", "loss"}
    model = build_model("resnet20", num_classes=10, width=0.25).eval()
    split = sample_data.test.subset(100)
    plain = evaluate(model, sample_data, split)
    both = evaluate(model, sample_data, split, topk=(1, 5))
    assert plain.keys() == {"acc", "loss"} and both["acc"] == plain["acc"] and both["loss"] == plain["loss"]
    assert plain["acc"] <= both["acc5"] <= 100
    with pytest.raises(ConfigError, match="topk"):
        evaluate(model, sample_data, split, topk=(0,))


def test_trainer_one_epoch_checkpoints_and_resumes(data: StreamingSplits, tmp_path: Path) -> None:
    """A 1-epoch run on streamed data writes a checkpoint (with test_acc5); a run stopped after epoch 1
    and resumed ends with the same weights and metrics as an uninterrupted one."""
    # channels_last off: torch 2.14's CPU oneDNN backward of a width-0.25 ResNet-20 at 64 px corrupts the heap
    cfg = TrainConfig(model="resnet20", width=0.25, dataset="imagefolder:mini", epochs=1, batch_size=4, lr=0.05,
                      channels_last=False, seed=2)

    def trainer(epochs: int, out: Path, **kw) -> Trainer:
        torch.manual_seed(0)
        model = build_model("resnet20", num_classes=3, width=0.25)
        return Trainer(model, data, cfg.replace(epochs=epochs), out_dir=out, device="cpu", show_progress=False,
                       num_workers=0, **kw)

    (rec,) = trainer(1, tmp_path / "one").fit()
    assert {"train_loss", "test_acc", "test_acc5", "test_loss"} <= rec.keys() and rec["test_acc5"] == 100.0
    assert load_checkpoint(tmp_path / "one" / "checkpoint.pt")["epoch"] == 1
    assert (tmp_path / "one" / "metrics.jsonl").read_text().count("\n") == 1

    class Stop(Exception):
        pass

    def stop(record: dict) -> None:
        raise Stop

    straight = trainer(2, tmp_path / "straight")
    straight.fit()
    with pytest.raises(Stop):
        trainer(2, tmp_path / "resumed", on_epoch_end=stop).fit()
    resumed = trainer(2, tmp_path / "resumed")
    resumed.fit(resume=True)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    timing = {"epoch_time_s", "img_per_s", "data_time_share"}
    untimed = lambda h: [{k: v for k, v in r.items() if k not in timing} for r in h]  # noqa: E731
    assert untimed(resumed.history) == untimed(straight.history)


# -- errors ----------------------------------------------------------------------------------
def test_large_archive_asks_to_extract(tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "imagenet-mini.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tree, arcname="imagenet-mini")
    for kwargs in ({}, {"stream": True}):
        with pytest.raises(DataError) as ei:
            load_dataset(f"imagefolder:{archive}", root=tmp_path, **kwargs)
        msg = str(ei.value)
        assert "\n" not in msg and str(archive) in msg and "extract" in msg
    assert isinstance(load_dataset(f"imagefolder:{archive}", root=tmp_path, size=16), DatasetSplits)


def test_folders_without_images(tmp_path: Path) -> None:
    """stream=True on an empty folder, on class folders without images, on a missing path: one line naming it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    noimg = tmp_path / "noimg"
    for split in ("train", "val"):
        (noimg / split / "cat").mkdir(parents=True)
    (noimg / "train" / "cat" / "readme.txt").write_text("hello")
    flat = write_tree(tmp_path / "flat", n_train=1, n_test=1)
    for p in list((flat / "val").rglob("*.*")):  # ImageNet's val/ as downloaded: no class folders
        p.rename(flat / "val" / f"{p.parent.name}-{p.name}")
    with pytest.raises(DataError, match="class"):
        load_dataset(f"imagefolder:{flat}", root=tmp_path)
    for path in (empty, noimg, tmp_path / "missing"):
        with pytest.raises(DataError) as ei:
            load_dataset(f"imagefolder:{path}", root=tmp_path, stream=True)
        msg = str(ei.value)
        assert "\n" not in msg and str(path) in msg and ("check the" in msg or "layout" in msg), msg


def test_corrupt_image_is_one_line(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "bad", n_train=1, n_test=1)
    bad = root / "val" / "bee" / "00.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data = load_dataset(f"imagefolder:{root}", root=tmp_path, input_size=32)
    for workers in (0, 2):
        with pytest.raises(DataError) as ei:
            evaluate(Constant(), data, num_workers=workers)
        msg = str(ei.value)
        assert "\n" not in msg and str(bad) in msg and "replace or delete" in msg, msg


# -- fast repeated evaluation and the pruning explorer on streamed data --------------------------
def test_eval_batches_and_pruning_explorer_accept_streamed_data(data: StreamingSplits) -> None:
    """Streamed splits are decoded once into ready batches (or per batch past the cache budget);
    accuracies match ``evaluate`` and the explorer's readout works on them."""
    from oicsr_lab.inference import EvalBatches, inference_copy
    from oicsr_lab.pruning import prune
    from oicsr_lab.widgets import PruningExplorer

    torch.manual_seed(0)
    model = build_model("resnet20", 3, width=0.25).eval()
    ref = evaluate(model, data, data.test, batch_size=5)["acc"]
    for budget in (2**30, 0):
        batches = EvalBatches(data.test, data.mean, data.std, batch_size=5, input_size=SIZE, max_cached_bytes=budget)
        assert (batches._cached is not None) == (budget > 0) and batches.bounds == [(0, 5), (5, 10), (10, 12)]
        assert batches.batch(0)[0].shape == (5, 3, SIZE, SIZE)
        assert batches.accuracy(inference_copy(model)) == pytest.approx(ref)
    ex = PruningExplorer({"l2": model}, data, eval_images=None, async_mode="sync", batch_size=5, precision="fp32")
    ex.set_ratio(0.2)
    row = ex.readout["l2"]
    assert row["acc"] == pytest.approx(evaluate(prune(model, ex.plans["l2"]), data, data.test)["acc"])
    assert row["acc_dense"] == pytest.approx(ref)
    ex.close()
    with pytest.raises(ConfigError, match="EvalBatches needs a data split"):
        EvalBatches([1, 2, 3], data.mean, data.std)


def test_streamed_data_refuses_cutout(data: StreamingSplits) -> None:
    """Cutout is for in-memory (CIFAR-sized) data; asking for it on streamed images is a one-line ConfigError."""
    from oicsr_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="cutout=8 applies to in-memory"):
        make_loader(data.train, 4, (0.5,) * 3, (0.5,) * 3, shuffle=True, augment=True, cutout=8)
