"""Decode ImageFolder trees (a directory or a .tar/.tar.gz/.zip of one) into uint8 tensors.

Layout: ``<root>/{train,test|val}/<class>/<image>``; the split folders may sit one level down
(``cifar10/train/...`` inside an archive). Classes are the sorted folder names.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".webp", ".tif", ".tiff"}
TRAIN_NAMES = ("train",)
TEST_NAMES = ("test", "val", "validation")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


def is_archive(path: Path) -> bool:
    """True when ``path`` is a file named like a tar (plain, gz, bz2, xz) or zip archive."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _skipped(rel: PurePosixPath) -> bool:
    """Hidden files and macOS resource forks (``._x.jpg``, ``__MACOSX/``) are not images."""
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.parts)


def _iter_entries(path: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """Yield (relative posix path, bytes) for every image file in a directory or archive."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            rel = PurePosixPath(p.relative_to(path).as_posix())
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not _skipped(rel):
                yield rel, p.read_bytes()
        return
    fix = "re-create or re-download it, or point --data-dir / OICSR_LAB_DATA elsewhere"
    if path.name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                for name in sorted(zf.namelist()):
                    rel = PurePosixPath(name)
                    if rel.suffix.lower() in IMAGE_EXTS and not _skipped(rel):
                        yield rel, zf.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise DataError(f"{path}: not a readable zip archive ({_one_line(e)}); {fix}") from e
        return
    if not is_archive(path):
        raise DataError(f"{path}: neither a folder nor a {'/'.join(ARCHIVE_SUFFIXES)} archive; "
                        f"pass an ImageFolder folder or archive")
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                rel = PurePosixPath(m.name)
                if m.isfile() and rel.suffix.lower() in IMAGE_EXTS and not _skipped(rel):
                    yield rel, tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: corrupt or truncated archive ({_one_line(e)}); {fix}") from e


def _one_line(e: BaseException) -> str:
    """The first line of an exception's message (or its type name), shortened."""
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]


def _split_of(rel: PurePosixPath) -> tuple[str, str] | None:
    """Map ``.../<split>/<class>/<file>`` to (split, class), or None for other files."""
    parts = rel.parts
    if len(parts) < 3:
        return None
    split, cls = parts[-3].lower(), parts[-2]
    if split in TRAIN_NAMES:
        return "train", cls
    if split in TEST_NAMES:
        return "test", cls
    return None


def read_imagefolder(path: str | Path, size: int | None = None) -> dict:
    """Decode every image of an ImageFolder tree/archive into ``{"train": (x, y), "test": (x, y), "classes"}``.

    ``x`` is uint8 ``(N, 3, H, W)``; ``size`` resizes images to ``size x size`` (required when
    image sizes differ).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; expected an ImageFolder tree or a .tar/.tar.gz/.zip of one "
            f"(train/<class>/*.jpg and test/<class>/*.jpg)"
        )
    raw: dict[str, list[tuple[str, str, bytes]]] = defaultdict(list)
    for rel, data in _iter_entries(path):
        sc = _split_of(rel)
        if sc is not None:
            raw[sc[0]].append((sc[1], str(rel), data))
    if not raw.get("train") or not raw.get("test"):
        found = ", ".join(f"{k}: {len(v)}" for k, v in raw.items()) or "no images"
        raise DataError(
            f"{path}: expected images under train/<class>/ and test/<class>/ (or val/<class>/), found {found}; "
            f"check the folder layout or pass another path"
        )
    classes = sorted({c for c, _, _ in raw["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out: dict = {"classes": classes}
    for split, items in raw.items():
        unknown = {c for c, _, _ in items} - set(index)
        if unknown:
            raise DataError(f"{path}: {split} has classes not in train: {sorted(unknown)[:5]}; "
                            f"give train/ a folder for every class")
        images = [_decode(b, size, f"{path}: {rel}") for _, rel, b in items]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise DataError(f"{path}: images have different sizes {sorted(shapes)[:3]}; "
                            f"resize them to one size or pass size= to load_dataset")
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([index[c] for c, _, _ in items], dtype=torch.int64)
        out[split] = (x, y)
    return out


def _decode(data: bytes, size: int | None, source: str) -> np.ndarray:
    """Decode one image to an RGB uint8 HWC array, optionally resized."""
    try:
        im = Image.open(io.BytesIO(data)).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{source}: image could not be decoded ({_one_line(e)}); "
                        f"replace or delete that file, or re-create the data set") from e
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)
