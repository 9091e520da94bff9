"""Data: datasets by name, the embedded CIFAR-10 sample, tensor caches and batched augmentation;
large ImageFolder data (ImageNet) streamed from disk by DataLoader workers."""

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
from .loader import TensorLoader, make_loader, random_crop_flip
from .stream_loader import StreamingLoader, resolve_workers
from .streaming import IMAGENET_MEAN, IMAGENET_STD, StreamingSplit, StreamingSplits, open_streaming

__all__ = [
    "CIFAR_MEAN", "CIFAR_STD", "DatasetSplits", "IMAGENET_MEAN", "IMAGENET_STD", "Split", "StreamingLoader",
    "StreamingSplit", "StreamingSplits", "TensorLoader", "data_root", "find_cifar10_archive", "load_dataset",
    "make_loader", "open_streaming", "random_crop_flip", "resolve_workers", "sample_path",
]
