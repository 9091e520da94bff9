"""Recompute ``oicsr_lab/pretrained/sample_holdout.json``: the sample training images no shipped network trained on.

    python scripts/sample_holdout.py ../shared/data/cifar10-jpeg.tar.gz

See :mod:`oicsr_lab.pretrained.holdout`. Reads file names and bytes only (a few seconds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oicsr_lab.io import atomic_write_text
from oicsr_lab.pretrained.holdout import HOLDOUT_FILE, compute_sample_holdout


def main() -> None:
    """Parse ``ARCHIVE [--val-images 5000]`` and write the file next to the shipped models."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive", help="the CIFAR-10 ImageFolder archive the shipped networks trained on")
    ap.add_argument("--val-images", type=int, default=5000)
    args = ap.parse_args()
    record = compute_sample_holdout(args.archive, args.val_images)
    out = Path(__file__).resolve().parents[1] / "oicsr_lab" / "pretrained" / HOLDOUT_FILE
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    print(f"{out}: {len(record['indices'])} held-out sample training images")


if __name__ == "__main__":
    main()
