"""A printable model summary: layers, parameters, MACs and out-in-channel groups (``oicsr-lab info``)."""

from __future__ import annotations

import torch

from .models import build_model, default_input_size


def model_summary(name: str, width: float = 1.0, num_classes: int = 10, input_size: int | None = None,
                  show_groups: bool = False, top: int | None = None) -> str:
    """Text summary of registry model ``name``: per-layer MACs/params, totals, and optionally its groups."""
    from .flops import count_flops

    size = input_size or default_input_size(name)
    model = build_model(name, num_classes=num_classes, width=width).eval()
    x = torch.zeros(1, 3, size, size)
    report = count_flops(model, x)
    lines = [
        f"model {name} (width {width}, {num_classes} classes, input 3x{size}x{size})",
        f"parameters: {report.total_params:,} ({report.total_params / 1e6:.3f} M)",
        f"MACs (Conv + Linear, the paper's FLOPs): {report.total_macs:,} ({report.total_macs / 1e6:.2f} M)",
        "",
        report.table(top=top),
    ]
    if show_groups:
        from .groups import describe, find_groups

        lines += ["", describe(find_groups(model, x))]
    return "\n".join(lines)
