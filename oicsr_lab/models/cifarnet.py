"""CifarNet, the TF-slim CIFAR-10 model (tensorflow/models research/slim/nets/cifarnet.py).

conv5x5 64 - ReLU - maxpool 3x3/2 - [LRN] - conv5x5 64 - ReLU - [LRN] - maxpool 3x3/2 -
flatten (64x8x8 = 4096) - fc 384 - dropout 0.5 - fc 192 - logits. Convs and FCs keep their
biases, as in slim. LRN is off by default: it mixes neighbouring channels, so a channel
cannot be removed on its own; ``lrn=True`` adds it with slim's constants (depth_radius 4,
alpha 0.001/9 per element, beta 0.75, bias 1 -> ``LocalResponseNorm(9, 0.001, 0.75, 1.0)``).
Pools use padding 1 (slim: "SAME"). 1,756,426 parameters at width 1, 10 classes.
Conv2 -> fc384 is a flatten-to-Linear out-in-channel (64-column blocks).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from ._common import scaled
from ._weights import kaiming_init


class CifarNet(nn.Module):
    """Two conv5x5 layers with pooling, then fc384 - fc192 - logits."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, lrn: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2 = scaled(64, width), scaled(64, width)
        f1, f2 = scaled(384, width), scaled(192, width)

        def norm() -> nn.Module:
            return nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0) if lrn else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1), norm(),
            nn.Conv2d(c1, c2, 5, 1, 2), nn.ReLU(), norm(), nn.MaxPool2d(3, 2, 1),
        )
        self.classifier = nn.Sequential(
            nn.Linear(c2 * 8 * 8, f1), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(f1, f2), nn.ReLU(),
            nn.Linear(f2, num_classes),
        )
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.classifier(x)


@register_model("cifarnet")
def cifarnet(num_classes: int = 10, width: float = 1.0, **kwargs) -> CifarNet:
    """TF-slim CifarNet (conv64-conv64-fc384-fc192), LRN off unless ``lrn=True``."""
    return CifarNet(num_classes=num_classes, width=width, **kwargs)
