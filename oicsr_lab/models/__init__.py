"""Model registry: the paper's CIFAR families plus any torchvision classifier.

``build_model("resnet56", num_classes=10)``, ``build_model("torchvision:resnet50")``.
Register a new architecture with :func:`register_model`.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_INPUT_SIZE: dict[str, int] = {}


def register_model(name: str, input_size: int = 32) -> Callable:
    """Decorator: register ``fn(num_classes, width, **kw) -> nn.Module`` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        _INPUT_SIZE[name] = input_size
        return fn

    return deco


def list_models() -> list[str]:
    """Names accepted by :func:`build_model` (torchvision models take a ``torchvision:`` prefix)."""
    _load_builtin()
    return sorted(_REGISTRY)


def default_input_size(name: str) -> int:
    """Spatial size the architecture was designed for (32 for the CIFAR zoo, 224 for torchvision)."""
    if name.startswith("torchvision:"):
        return 224
    _load_builtin()
    return _INPUT_SIZE.get(name, 32)


def build_model(name: str, num_classes: int = 10, width: float = 1.0, **kwargs) -> nn.Module:
    """Build a model by registry name, e.g. ``build_model("resnet20", num_classes=10, width=0.5)``.

    ``width`` scales every internal channel count (the ci/quick presets use narrow nets).
    ``torchvision:<name>`` builds ``torchvision.models.<name>(weights=None, num_classes=...)``.

    Example:
        >>> from oicsr_lab import build_model
        >>> model = build_model("resnet56", num_classes=10)
        >>> sum(p.numel() for p in model.parameters())
        855770
        >>> build_model("resnet20", width=0.25).layer1[0].conv1.out_channels
        4
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model name must be a non-empty string, got {name!r}")
    if width <= 0:
        raise ConfigError(f"width must be > 0, got {width}")
    if name.startswith("torchvision:"):
        import torchvision.models as tvm

        tv_name = name.split(":", 1)[1]
        available = tvm.list_models(module=tvm)
        if tv_name not in available:
            raise ConfigError(
                f"unknown torchvision model {tv_name!r}; choose one of torchvision.models.list_models(), "
                f"e.g. resnet18, resnet50, vgg16_bn, mobilenet_v2"
            )
        if width != 1.0:
            raise ConfigError("width scaling is only available for the CIFAR zoo, not torchvision models")
        return tvm.get_model(tv_name, weights=None, num_classes=num_classes, **kwargs)
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))} "
            f"or 'torchvision:<name>' (e.g. torchvision:resnet50)"
        )
    return _REGISTRY[name](num_classes=num_classes, width=width, **kwargs)


def build_checked(name: str, num_classes: int, width: float) -> nn.Module:
    """:func:`build_model`, with a bad name or width reported as a one-line ConfigError."""
    try:
        return build_model(name, num_classes=num_classes, width=width)
    except ValueError as e:
        raise ConfigError(str(e).splitlines()[0] if str(e) else f"cannot build model {name!r}") from None


def check_model(name: str, width: float, num_classes: int = 10) -> None:
    """Raise ConfigError when ``name``/``width`` cannot be built (checked cheaply on the meta device)."""
    import torch

    with torch.device("meta"):
        build_checked(name, num_classes, width)


_loaded = False


def _load_builtin() -> None:
    """Import the zoo modules so their ``@register_model`` decorators run."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


__all__ = ["build_checked", "build_model", "check_model", "default_input_size", "list_models", "register_model"]
