"""Data: datasets by name, the embedded CIFAR-10 sample, tensor caches and batched augmentation."""

from .datasets import (
    CIFAR_MEAN,
    CIFAR_STD,
    DatasetSplits,
    Split,
    data_root,
    find_cifar10_archive,
    load_dataset,
    sample_path,
)
from .loader import TensorLoader, random_crop_flip

__all__ = [
    "CIFAR_MEAN", "CIFAR_STD", "DatasetSplits", "Split", "TensorLoader", "data_root",
    "find_cifar10_archive", "load_dataset", "random_crop_flip", "sample_path",
]
