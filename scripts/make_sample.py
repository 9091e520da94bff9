"""Build oicsr_lab/data/assets/cifar10-sample.tar.gz from the CIFAR-10 JPEG archive.

The sample is class-balanced and drawn deterministically (``random.Random(0)`` over each
class's sorted file names); JPEG bytes are copied unchanged, so the sample's pixels equal the
archive's. Usage: ``python scripts/make_sample.py ../shared/data/cifar10-jpeg.tar.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import tarfile
from collections import defaultdict
from pathlib import Path

PER_CLASS = {"train": 500, "test": 100}


def main() -> None:
    """Write the sample zip (train 5,000 / test 1,000 images) and print its size."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("archive", type=Path)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parents[1] / "oicsr_lab/data/assets/cifar10-sample.tar.gz")
    args = ap.parse_args()
    members: dict[tuple[str, str], list[tarfile.TarInfo]] = defaultdict(list)
    with tarfile.open(args.archive) as tar:
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if m.isfile() and len(parts) == 4 and parts[1] in PER_CLASS:
                members[(parts[1], parts[2])].append(m)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # gzip with mtime 0 and fixed member metadata: the same archive bytes on every run.
        with open(args.out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as out:
                for (split, cls), ms in sorted(members.items()):
                    ms = sorted(ms, key=lambda m: m.name)
                    chosen = sorted(random.Random(0).sample(ms, PER_CLASS[split]), key=lambda m: m.name)
                    for m in chosen:
                        data = tar.extractfile(m).read()
                        info = tarfile.TarInfo(f"cifar10-sample/{split}/{cls}/{Path(m.name).name}")
                        info.size, info.mtime, info.mode = len(data), 0, 0o644
                        out.addfile(info, io.BytesIO(data))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
