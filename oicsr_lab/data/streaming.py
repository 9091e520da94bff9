"""Large ImageFolder data (ImageNet): images read from disk by DataLoader workers, never cached in memory.

:func:`oicsr_lab.data.load_dataset` returns :class:`StreamingSplits` for an ``imagefolder:<folder>``
whose images are large or numerous (see :func:`wants_streaming`) or when asked with ``stream=True``.
This module decides whether a path streams and finds its samples (``torchvision.datasets.ImageFolder``
order); :mod:`oicsr_lab.data.stream_loader` turns a split into batches (the standard ImageNet
transforms, uint8 from the workers, normalised on the training device, augmentation seeded per
``(seed, epoch, image)`` so a run resumes exactly).
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError
from .imagefolder import IMAGE_EXTS, TEST_NAMES, TRAIN_NAMES, is_archive

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STREAM_MIN_SIDE = 64          # a first image with a side above this streams
STREAM_MIN_FILES = 200_000    # more image files than this stream
STREAM_MIN_ARCHIVE_BYTES = 2 << 30  # an archive this big is treated as large data (its file count is unknown)
WORKERS_ENV = "OICSR_LAB_WORKERS"


# -- choosing the path -----------------------------------------------------------------------
def _is_image_name(name: str) -> bool:
    """An image file name that is not hidden (``.x.jpg``) nor a macOS resource fork."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTS


def _skip_dir(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _first_image(path: Path) -> Path | None:
    """The first image file of a folder tree in sorted walk order, listing as little as possible."""
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not _skip_dir(d))
        for f in sorted(filenames):
            if _is_image_name(f):
                return Path(dirpath) / f
    return None


def _count_images(path: Path, limit: int) -> int:
    """Image files under ``path``, counting stops once above ``limit``."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if not _skip_dir(d)]
        n += sum(_is_image_name(f) for f in filenames)
        if n > limit:
            break
    return n


def _side(source) -> int | None:
    """The longer side of an image (file path or bytes), read from its header; None when unreadable."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            return max(im.size)
    except Exception:  # the in-memory decoder reports bad files with a proper message
        return None


def _archive_probe(path: Path) -> tuple[int | None, int | None]:
    """(longer side of the first image, image count when cheap to know) of an archive; (None, None) if unreadable."""
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in sorted(zf.namelist()) if _is_image_name(PurePosixPath(n).name)
                         and not any(_skip_dir(p) for p in PurePosixPath(n).parts[:-1])]
                return (_side(zf.read(names[0])) if names else None), len(names)
        with tarfile.open(path) as tar:  # members are read lazily: only up to the first image
            for m in tar:
                rel = PurePosixPath(m.name)
                if m.isfile() and _is_image_name(rel.name) and not any(_skip_dir(p) for p in rel.parts[:-1]):
                    return _side(tar.extractfile(m).read()), None
    except Exception:  # corrupt archives are reported by the in-memory reader
        pass
    return None, None


def wants_streaming(path: Path, size: int | None = None) -> tuple[bool, str]:
    """Whether an ImageFolder folder/archive is large data, and why (for messages).

    Large: the first image's longer side is above ``STREAM_MIN_SIDE`` (unless ``size`` asks
    for an in-memory resize), more than ``STREAM_MIN_FILES`` images, or an archive of at least
    ``STREAM_MIN_ARCHIVE_BYTES``.
    """
    if is_archive(path):
        nbytes = path.stat().st_size
        if nbytes >= STREAM_MIN_ARCHIVE_BYTES:
            return True, f"{nbytes / 2**30:.1f} GiB"
        side, count = _archive_probe(path)
    elif path.is_dir():
        first = _first_image(path)
        side = _side(first) if first is not None else None
        count = None
    else:
        return False, ""
    if size is None and side is not None and side > STREAM_MIN_SIDE:
        return True, f"images of {side} px (above {STREAM_MIN_SIDE})"
    if count is None and path.is_dir() and side is not None:
        count = _count_images(path, STREAM_MIN_FILES)
    if count is not None and count > STREAM_MIN_FILES:
        return True, f"more than {STREAM_MIN_FILES:,} images"
    return False, ""


def archive_error(path: Path, why: str) -> DataError:
    """The one-line error for large data packed in an archive."""
    return DataError(
        f"{path}: an archive of large data ({why}); large data is streamed from image files in a folder, "
        f"not from an archive: extract it (e.g. tar -xf / unzip into a folder) and pass imagefolder:<that folder>, "
        f"or pass size=N to decode it into memory at NxN pixels"
    )


# -- the splits ------------------------------------------------------------------------------
@dataclass
class StreamingSplit:
    """One split on disk: image file paths (bytes, no per-item Python objects) and int64 labels."""

    paths: np.ndarray
    labels: torch.Tensor
    root: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int = 0) -> "StreamingSplit":
        """A random subset of ``n`` examples (all when ``n`` is None), drawn as :meth:`Split.subset`."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return StreamingSplit(self.paths[idx.numpy()], self.labels[idx], self.root)


@dataclass
class StreamingSplits:
    """Train and test splits read from disk, with the attributes the trainer and evaluation read."""

    name: str
    train: StreamingSplit
    test: StreamingSplit
    classes: list[str]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = 224
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A float input of the right shape, for tracing and FLOPs counting."""
        return torch.zeros(batch, 3, self.input_size, self.input_size)


def _split_dirs(path: Path) -> tuple[Path | None, Path | None]:
    """(train folder, test/val folder) of an ImageFolder root, looking one level down when needed."""
    def find(folder: Path) -> tuple[Path | None, Path | None]:
        subdirs = {d.name.lower(): d for d in sorted(folder.iterdir()) if d.is_dir() and not _skip_dir(d.name)}
        train = next((subdirs[n] for n in TRAIN_NAMES if n in subdirs), None)
        test = next((subdirs[n] for n in TEST_NAMES if n in subdirs), None)
        return train, test

    train, test = find(path)
    if train is None and test is None:
        inner = [d for d in sorted(path.iterdir()) if d.is_dir() and not _skip_dir(d.name)]
        if len(inner) == 1:
            train, test = find(inner[0])
    return train, test


def _scan(folder: Path, classes: list[str] | None) -> tuple[list[str], StreamingSplit]:
    """Samples of one split folder through torchvision's ImageFolder (``classes``: the train split's)."""
    from torchvision.datasets import ImageFolder

    class _Folder(ImageFolder):
        def find_classes(self, directory):  # hidden folders (.ipynb_checkpoints) are not classes
            found = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not _skip_dir(e.name))
            names = found if classes is None else classes
            return names, {c: i for i, c in enumerate(names)}

    if classes is not None:
        found = {e.name for e in os.scandir(folder) if e.is_dir() and not _skip_dir(e.name)}
        unknown = sorted(found - set(classes))
        if unknown:
            raise DataError(f"{folder}: has classes not in train: {unknown[:5]}; give train/ a folder for every class")
    try:
        ds = _Folder(str(folder), is_valid_file=lambda p: _is_image_name(os.path.basename(p)), allow_empty=True)
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"{folder}: cannot list images ({str(e).splitlines()[0][:160]}); "
                        "check the folder layout") from e
    if not ds.samples:
        if any(e.is_file() and _is_image_name(e.name) for e in os.scandir(folder)):
            raise DataError(f"{folder}: holds images directly, not in <class>/ folders; sort them into one folder per "
                            f"class (for ImageNet's val/, e.g. with the usual valprep.sh script)")
        kind = "class folders" if not ds.classes else "images"
        raise DataError(f"{folder}: no images found ({kind} missing); expected <class>/<image> inside it, "
                        f"check the folder layout or pass another path")
    paths = np.array([os.fsencode(p) for p, _ in ds.samples])
    labels = torch.tensor([t for _, t in ds.samples], dtype=torch.int64)
    return list(ds.classes), StreamingSplit(paths, labels, str(folder))


def open_streaming(path: str | Path, name: str | None = None, input_size: int = 224,
                   mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> StreamingSplits:
    """:class:`StreamingSplits` of an ImageFolder folder with ``train/`` and ``val/`` (or ``test/``) class folders.

    Without ``train/`` the data set is evaluation-only (an empty train split, noted in ``notes``).
    """
    path = Path(path)
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 8:
        raise ConfigError(f"input_size must be an integer of at least 8 pixels, got {input_size!r}")
    if not path.exists():
        raise DataError(f"{path}: no such folder; expected an ImageFolder tree (train/<class>/*.JPEG and "
                        f"val/<class>/*.JPEG); check the path, --data-dir or OICSR_LAB_DATA")
    if is_archive(path):
        raise archive_error(path, "streaming requested")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; pass an ImageFolder folder with train/ and val/ (or "
                        "test/) class folders")
    train_dir, test_dir = _split_dirs(path)
    if test_dir is None:
        found = "no images" if _first_image(path) is None else "no val/ or test/ folder"
        raise DataError(f"{path}: expected images under train/<class>/ and val/<class>/ (or test/<class>/), "
                        f"found {found}; check the folder layout or pass another path")
    notes: list[str] = []
    if train_dir is not None:
        classes, train = _scan(train_dir, None)
        _, test = _scan(test_dir, classes)
    else:
        classes, test = _scan(test_dir, None)
        train = StreamingSplit(np.array([], dtype="S1"), torch.zeros(0, dtype=torch.int64), str(path / "train"))
        notes.append(f"{path}: no train/ folder; evaluation only")
    return StreamingSplits(name=name or f"imagefolder:{path}", train=train, test=test, classes=classes,
                           mean=tuple(mean),
                           std=tuple(std), input_size=input_size, source=str(path), notes=notes)
