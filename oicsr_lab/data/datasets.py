"""Datasets by name: ``cifar10``, ``cifar100``, ``cifar10-sample``, ``imagefolder:<path>``.

Small data sets are decoded once into a uint8 tensor cache (written atomically) and trained
from memory; see :mod:`oicsr_lab.data.loader` for the batched augmentation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from ..io import atomic_torch_save
from .imagefolder import ARCHIVE_SUFFIXES, is_archive, read_imagefolder
from .streaming import StreamingSplits, archive_error, open_streaming, wants_streaming

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
SAMPLE_NAME = "cifar10-sample"
SAMPLE_FILE = "cifar10-sample.tar.gz"
CACHE_VERSION = 1


@dataclass
class Split:
    """One split held in memory: uint8 images ``(N, 3, H, W)`` and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int = 0) -> "Split":
        """A class-stratified-by-chance random subset of ``n`` examples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return Split(self.images[idx], self.labels[idx])

    def take(self, idx: torch.Tensor) -> "Split":
        """The examples at ``idx`` (in that order)."""
        return Split(self.images[idx], self.labels[idx])


VAL_SEED = 20190611  # fixed: every run, seed and preset holds out the same validation images


def holdout_indices(labels: torch.Tensor, n: int, num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rest, val)`` index tensors: a deterministic, class-balanced validation part of ``n`` examples.

    Each class gives ``n // C`` examples (the first ``n % C`` classes one more), drawn by a fixed
    permutation that depends on nothing but the labels, so the same ``n`` always yields the same
    validation images whatever the run's seed. Both index tensors are sorted and disjoint.
    """
    labels = torch.as_tensor(labels)
    total = len(labels)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n >= total:
        raise ConfigError(f"validation size must be a whole number between 1 and {total - 1} "
                          f"(the training split has {total} images), got {n!r}; pass e.g. --val-images {total // 10}")
    classes = int(num_classes if num_classes is not None else int(labels.max()) + 1)
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(VAL_SEED))
    by_class = [perm[labels[perm] == c] for c in range(classes)]
    want = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    short = [c for c in range(classes) if len(by_class[c]) < want[c]]
    if short:
        raise ConfigError(f"validation size {n} needs {want[short[0]]} images of class {short[0]}, which has only "
                          f"{len(by_class[short[0]])}; pass a smaller --val-images")
    val = torch.cat([by_class[c][: want[c]] for c in range(classes)]).sort().values
    keep = torch.ones(total, dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val


@dataclass
class DatasetSplits:
    """Train and test splits plus what a model needs to know about them."""

    name: str
    train: Split
    test: Split
    classes: list[str]
    mean: tuple[float, ...] = CIFAR_MEAN
    std: tuple[float, ...] = CIFAR_STD
    source: str = ""
    notes: list[str] = field(default_factory=list)
    val: Split | None = None  # held out of the original training split (see with_validation)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_validation(self, n: int | None) -> "DatasetSplits":
        """A copy whose ``val`` holds ``n`` class-balanced training images and whose ``train`` holds the rest.

        Deterministic (see :func:`holdout_indices`): every run that asks for ``n`` sees the same
        validation images, disjoint from ``train`` and from ``test``. Choices (strengths,
        criteria, normalisations) are made on ``val``; ``test`` is for reported numbers only.
        ``n`` None or 0 returns ``self``; asking again for the same ``n`` returns ``self``.

        Example:
            >>> from oicsr_lab import load_dataset
            >>> d = load_dataset("cifar10-sample").with_validation(500)
            >>> len(d.train), len(d.val), int(d.val.labels.bincount().min())
            (4500, 500, 50)
        """
        if not n:
            return self
        if self.val is not None:
            if len(self.val) == n:
                return self
            raise ConfigError(f"{self.name}: a validation part of {len(self.val)} images is already held out; "
                              f"cannot hold out {n} (load the data set again)")
        rest, val = holdout_indices(self.train.labels, n, self.num_classes)
        return dataclasses.replace(self, train=self.train.take(rest), val=self.train.take(val), notes=list(self.notes))

    def hold_out(self, indices: torch.Tensor | list[int]) -> "DatasetSplits":
        """A copy whose ``val`` holds the training images at ``indices`` and whose ``train`` holds the rest.

        For a validation split fixed elsewhere, e.g. the sample images the shipped networks never
        trained on (:func:`oicsr_lab.pretrained.holdout.with_shipped_validation`). A later
        ``with_validation(len(indices))`` returns the copy itself.

        Example:
            >>> from oicsr_lab import load_dataset
            >>> d = load_dataset("cifar10-sample").hold_out([0, 7, 42])
            >>> len(d.train), len(d.val)
            (4997, 3)
        """
        if self.val is not None:
            raise ConfigError(f"{self.name}: a validation part of {len(self.val)} images is already held out; "
                              f"load the data set again before holding out others")
        idx = torch.as_tensor(indices, dtype=torch.int64).flatten().unique()
        total = len(self.train)
        if len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= total or len(idx) >= total:
            raise ConfigError(f"{self.name}: held-out indices must be distinct training indices in [0, {total}) "
                              f"leaving some training images, got {len(idx)} from {list(idx[:3].tolist())}...")
        keep = torch.ones(total, dtype=torch.bool)
        keep[idx] = False
        return dataclasses.replace(self, train=self.train.take(keep.nonzero().flatten()), val=self.train.take(idx),
                                   notes=list(self.notes))

    @property
    def input_size(self) -> int:
        return int(self.train.images.shape[-1])

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A float input of the right shape, for tracing and FLOPs counting."""
        return torch.zeros(batch, 3, self.input_size, self.input_size)


def offline() -> bool:
    """True when ``$OICSR_LAB_OFFLINE`` is set (``1``, ``true``, ``yes``): never try a download (a machine whose
    network hangs instead of failing fast); a local archive in the data root is used instead."""
    return os.environ.get("OICSR_LAB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$OICSR_LAB_DATA``, else the user cache dir."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("OICSR_LAB_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("oicsr-lab"))


def cache_dir(root: Path) -> Path:
    """Where decoded tensor caches go: ``<root>/.oicsr-cache`` if writable, else the user cache."""
    cand = root / ".oicsr-cache"
    try:
        cand.mkdir(parents=True, exist_ok=True)
        if os.access(cand, os.W_OK):
            return cand
    except OSError:
        pass
    from platformdirs import user_cache_dir

    fallback = Path(user_cache_dir("oicsr-lab")) / "tensors"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def sample_path() -> Path:
    """Path of the CIFAR-10 sample shipped inside the package."""
    return Path(str(resources.files("oicsr_lab.data").joinpath("assets", SAMPLE_FILE)))


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True, size: int | None = None,
                 stream: bool | None = None, input_size: int = 224,
                 val_images: int | None = None) -> DatasetSplits | StreamingSplits:
    """Load a data set by name, e.g. ``load_dataset("cifar10-sample")``.

    ``val_images``: hold out that many class-balanced training images as ``data.val`` (the
    same ones every time; see :meth:`DatasetSplits.with_validation`), e.g. 5,000 of CIFAR-10's
    50,000 or 500 of the sample's 5,000. Not available for streamed data.

    Names: ``cifar10-sample`` (shipped, offline), ``cifar10`` / ``cifar100`` (torchvision;
    downloaded into the data root when possible, else a CIFAR-10 ImageFolder archive found in
    the data root is used), ``imagefolder:<path>`` (a folder or .tar/.tar.gz/.zip with
    train/ and test/ (or val/) class folders). ``root``: see :func:`data_root`.

    Small data is decoded into memory (:class:`DatasetSplits`). An ``imagefolder:`` *folder* of
    large data (images above 64 px, unless ``size`` resizes them, or over 200,000 images; see
    :func:`~oicsr_lab.data.streaming.wants_streaming`) or ``stream=True`` gives
    :class:`~oicsr_lab.data.streaming.StreamingSplits` read from disk by DataLoader workers at
    ``input_size`` pixels; ``stream=False`` forces decoding into memory. Large data in an archive
    raises a DataError asking to extract it.

    Example:
        >>> from oicsr_lab import load_dataset
        >>> data = load_dataset("cifar10-sample")  # shipped with the package, works offline
        >>> len(data.train), len(data.test), data.num_classes, tuple(data.train.images.shape[1:])
        (5000, 1000, 10, (3, 32, 32))
    """
    data = _load(name, root, download, size, stream, input_size)
    if val_images:
        if not isinstance(data, DatasetSplits):
            raise ConfigError(f"{name}: a validation hold-out (val_images={val_images}) needs data "
                              "decoded into memory; "
                              f"streamed data has its own val/ folder (pass stream=False for small data)")
        data = data.with_validation(val_images)
    return data


def _load(name: str, root: str | os.PathLike | None, download: bool, size: int | None, stream: bool | None,
          input_size: int) -> DatasetSplits | StreamingSplits:
    """:func:`load_dataset` without the validation hold-out."""
    if not isinstance(name, str) or not name:
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    if stream is not None and not isinstance(stream, bool):
        raise ConfigError(f"stream must be True, False or None (choose automatically), got {stream!r}")
    root_path = data_root(root)
    if name.startswith("imagefolder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        if not path.is_absolute() and not path.exists() and (root_path / path).exists():
            path = root_path / path
        if stream and size is not None:
            raise ConfigError(f"{name}: size= resizes images decoded into memory; a streamed data set is cropped "
                              f"to input_size= instead (pass one or the other)")
        if stream is None and path.exists():
            stream, why = wants_streaming(path, size)
        else:
            why = "streaming requested"
        if stream:
            if is_archive(path):
                raise archive_error(path, why)
            return open_streaming(path, name, input_size=input_size)
        return _from_imagefolder(path, name, root_path, size)
    if stream:
        raise ConfigError(f"{name}: stream=True applies to imagefolder:<folder> data; {name} is decoded into memory")
    if name == SAMPLE_NAME:
        return _from_imagefolder(sample_path(), SAMPLE_NAME, root_path, size)
    if name in ("cifar10", "cifar100"):
        return _from_torchvision(name, root_path, download and not offline())
    raise DataError(
        f"unknown dataset {name!r}; choose cifar10-sample (shipped), cifar10, cifar100 or imagefolder:<path>"
    )


CACHE_KEYS = ("train_x", "train_y", "test_x", "test_y", "classes")


def _valid_cache(blob: object) -> bool:
    """True when a loaded cache has this version's keys and consistent uint8 images / labels."""
    if not isinstance(blob, dict) or blob.get("version") != CACHE_VERSION or any(k not in blob for k in CACHE_KEYS):
        return False
    return all(
        isinstance(blob[x], torch.Tensor) and isinstance(blob[y], torch.Tensor) and blob[x].dtype == torch.uint8
        and blob[x].dim() == 4 and len(blob[x]) == len(blob[y])
        for x, y in (("train_x", "train_y"), ("test_x", "test_y"))
    )


def _cached(key: str, root: Path, build) -> dict:
    """Load the tensor cache ``key`` from ``root``'s cache folder, or build and save it atomically."""
    path = cache_dir(root) / f"{key}.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            if _valid_cache(blob):
                return blob
        except Exception:  # a corrupt cache is rebuilt, never trusted
            pass
    blob = build()
    blob["version"] = CACHE_VERSION
    try:
        atomic_torch_save(blob, path)
    except OSError as e:
        warnings.warn(f"could not write tensor cache {path}: {e}; continuing without it")
    return blob


def _file_key(path: Path) -> str:
    """A cache key that changes when the file, or any file inside the folder, changes."""
    st = path.stat()
    h = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    if path.is_dir():  # a folder's own mtime misses edits inside its sub-folders
        for p in sorted(path.rglob("*")):
            if p.is_file():
                s = p.stat()
                h.update(f"|{p.relative_to(path).as_posix()}|{s.st_size}|{s.st_mtime_ns}".encode())
    return f"{path.resolve().name.split('.')[0] or 'data'}-{h.hexdigest()[:12]}"


def _from_imagefolder(path: Path, name: str, root: Path, size: int | None) -> DatasetSplits:
    """Decode an ImageFolder tree/archive (cached) into DatasetSplits."""
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder for dataset {name!r}; expected an ImageFolder tree or a "
            f"{'/'.join(ARCHIVE_SUFFIXES)} archive; check the path, --data-dir or OICSR_LAB_DATA"
        )

    def build() -> dict:
        d = read_imagefolder(path, size=size)
        return {"train_x": d["train"][0], "train_y": d["train"][1], "test_x": d["test"][0], "test_y": d["test"][1],
                "classes": d["classes"]}

    blob = _cached(_file_key(path) + (f"-{size}" if size else ""), root, build)
    return DatasetSplits(
        name=name,
        train=Split(blob["train_x"], blob["train_y"]),
        test=Split(blob["test_x"], blob["test_y"]),
        classes=list(blob["classes"]),
        source=str(path),
    )


def find_cifar10_archive(root: Path) -> Path | None:
    """A CIFAR-10 ImageFolder archive in ``root`` (e.g. cifar10-jpeg.tar.gz), if any."""
    if not root.is_dir():
        return None
    for p in sorted(root.iterdir()):
        flat = p.name.lower().replace("-", "").replace("_", "")
        official = any(w in flat for w in ("python", "binary", "matlab"))  # torchvision's own downloads
        if is_archive(p) and "cifar10" in flat and "cifar100" not in flat and not official:
            return p
    for p in (root / "cifar10",):
        if p.is_dir() and (p / "train").is_dir():
            return p
    return None


def _from_torchvision(name: str, root: Path, download: bool) -> DatasetSplits:
    """CIFAR-10/100 through torchvision, falling back to a CIFAR-10 archive in the data root."""
    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100

    def build() -> dict:
        tr = cls(str(root), train=True, download=False)
        te = cls(str(root), train=False, download=False)
        to_t = lambda ds: torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return {
            "train_x": to_t(tr), "train_y": torch.tensor(tr.targets), "test_x": to_t(te),
            "test_y": torch.tensor(te.targets), "classes": list(tr.classes),
        }

    try:
        cls(str(root), train=True, download=False)  # raises when the official files are missing
        have_official = True
    except RuntimeError:
        have_official = False
    if not have_official and download:
        try:
            root.mkdir(parents=True, exist_ok=True)
            cls(str(root), train=True, download=True)
            cls(str(root), train=False, download=True)
            have_official = True
        except Exception as e:  # offline: fall through to a local archive
            reason = f"download failed ({type(e).__name__})"
        else:
            reason = ""
    else:
        reason = "download disabled" if not have_official else ""
    if have_official:
        blob = _cached(f"{name}-official", root, build)
        return DatasetSplits(
            name=name, train=Split(blob["train_x"], blob["train_y"]), test=Split(blob["test_x"], blob["test_y"]),
            classes=list(blob["classes"]), source=str(root),
        )
    if name == "cifar10":
        archive = find_cifar10_archive(root)
        if archive is not None:
            note = f"official CIFAR-10 files not found in {root} ({reason}); using the ImageFolder archive {archive}"
            warnings.warn(note)
            ds = _from_imagefolder(archive, name, root, None)
            ds.notes.append(note)
            return ds
    raise DataError(
        f"{name}: the official files are not in {root} and could not be downloaded ({reason}); "
        f"download them with internet access, or point --data-dir / OICSR_LAB_DATA at a folder holding them"
        + (" or a CIFAR-10 ImageFolder archive (e.g. cifar10-jpeg.tar.gz)" if name == "cifar10" else "")
    )
