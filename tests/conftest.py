"""Shared fixtures: the decoded CIFAR-10 sample, its data folder, and the full archive when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # test sizes assume one thread; the machines are shared

ARCHIVE_NAME = "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def _one_thread_again():
    """Put torch back to one thread after each test: an in-process ``reproduce`` or ``prune`` without ``--threads``
    takes the idle cores (2 here), and a later test comparing weights bit for bit would then train differently."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide data root (pass as ``root=`` / ``--data-dir`` / ``OICSR_LAB_DATA``) holding the sample's cache."""
    return tmp_path_factory.mktemp("oicsr-data")


@pytest.fixture(scope="session")
def sample_data(data_dir: Path):
    """``load_dataset("cifar10-sample")`` decoded once per session (5,000 train / 1,000 test, uint8)."""
    from oicsr_lab.data import load_dataset

    return load_dataset("cifar10-sample", root=data_dir)


@pytest.fixture(scope="session")
def archive_path() -> Path:
    """The full CIFAR-10 JPEG archive at ``$OICSR_LAB_DATA/cifar10-jpeg.tar.gz``; skips when absent."""
    root = os.environ.get("OICSR_LAB_DATA")
    if not root:
        pytest.skip(f"set OICSR_LAB_DATA to a folder holding {ARCHIVE_NAME} (e.g. ../shared/data) to run this test")
    path = Path(root).expanduser() / ARCHIVE_NAME
    if not path.is_file():
        pytest.skip(f"{path} not found; put the full CIFAR-10 archive there to run this test")
    return path
