"""Decode ImageFolder trees (a directory or a .tar/.tar.gz/.zip of one) into uint8 tensors.

Layout: ``<root>/{train,test|val}/<class>/<image>``; the split folders may sit one level down
(``cifar10/train/...`` inside an archive). Classes are the sorted folder names.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
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
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def is_archive(path: Path) -> bool:
    """True when ``path`` names a .tar, .tar.gz, .tgz or .zip file."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _iter_entries(path: Path) -> Iterator[tuple[PurePosixPath, callable]]:
    """Yield (relative posix path, reader) for every image file in a directory or archive."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                yield PurePosixPath(p.relative_to(path).as_posix()), p.read_bytes
    elif path.name.lower().endswith(".zip"):
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise DataError(f"{path}: not a readable zip archive ({e}); re-download or point --data-dir elsewhere") from e
        with zf:
            for name in sorted(zf.namelist()):
                if PurePosixPath(name).suffix.lower() in IMAGE_EXTS:
                    yield PurePosixPath(name), (lambda n=name: zf.read(n))
    else:
        try:
            tar = tarfile.open(path)
            with tar:
                for m in tar:
                    if m.isfile() and PurePosixPath(m.name).suffix.lower() in IMAGE_EXTS:
                        data = tar.extractfile(m).read()
                        yield PurePosixPath(m.name), (lambda d=data: d)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{path}: corrupt or truncated archive ({e}); re-download it or point --data-dir elsewhere") from e


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
    raw: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for rel, read in _iter_entries(path):
        sc = _split_of(rel)
        if sc is not None:
            raw[sc[0]].append((sc[1], read()))
    if not raw.get("train") or not raw.get("test"):
        found = ", ".join(f"{k}: {len(v)}" for k, v in raw.items()) or "no images"
        raise DataError(
            f"{path}: expected images under train/<class>/ and test/<class>/ (or val/<class>/), found {found}; "
            f"check the folder layout or pass another path"
        )
    classes = sorted({c for c, _ in raw["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out: dict = {"classes": classes}
    for split, items in raw.items():
        unknown = {c for c, _ in items} - set(index)
        if unknown:
            raise DataError(f"{path}: {split} has classes not in train: {sorted(unknown)[:5]}")
        images = [_decode(b, size, path) for _, b in items]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise DataError(f"{path}: images have different sizes {sorted(shapes)[:3]}...; pass a resize size")
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([index[c] for c, _ in items], dtype=torch.int64)
        out[split] = (x, y)
    return out


def _decode(data: bytes, size: int | None, source: Path) -> np.ndarray:
    """Decode one image to an RGB uint8 HWC array, optionally resized."""
    try:
        im = Image.open(io.BytesIO(data)).convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{source}: an image could not be decoded ({e}); the data set is corrupt, re-create it") from e
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)
