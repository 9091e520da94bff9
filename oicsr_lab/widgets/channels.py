"""Out-in-channel viewer: the out-part W^l[i] and the in-part W^{l+1}[:, i] of one channel side by side.

Each heatmap's colour range is fixed to its whole layer's largest |weight|, so a redundant
out-in-channel looks pale in *both* heatmaps: the coupling OICSR regularises is visible. Below,
the group's per-channel energies (out-part and in-part stacked, from ``channel_energy``) with
the current channel highlighted; clicking a bar selects that channel.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import torch.nn as nn
from plotly.subplots import make_subplots

from ..errors import ConfigError
from ..groups import find_groups
from ..groups.types import ChannelGroup, GroupSet, Slice
from ..importance import channel_energy
from ._display import DisplayMixin
from ._figure import live_figure, redraw
from ._style import esc, group_label

__all__ = ["ChannelViewer", "out_part", "in_part"]
OUT_COLOR, IN_COLOR, CURRENT_COLOR = "#0072B2", "#E69F00", "#000000"  # current: a black marker, apart from both parts


def out_part(model: nn.Module, s: Slice, i: int) -> np.ndarray:
    """Out-part of channel ``i``: filter ``W^l[idx]`` as (in_ch, k*k); a Linear row as (1, in)."""
    w = model.get_submodule(s.module).weight.detach().float().cpu()
    row = w[s.indices[i]]
    return (row.reshape(row.shape[0], -1) if row.dim() > 1 else row.reshape(1, -1)).numpy()


def in_part(model: nn.Module, s: Slice, i: int) -> np.ndarray:
    """In-part of channel ``i``: ``W^{l+1}[:, idx]`` as (out_ch, k*k); a Linear column block as (out, block)."""
    mod = model.get_submodule(s.module)
    w = mod.weight.detach().float().cpu()
    cols = list(s.columns(i))
    if isinstance(mod, nn.Linear):
        return w[:, cols].numpy()
    part = w[:, cols]  # (out, block, kh, kw)
    return part.reshape(w.shape[0], -1).numpy()


def _layer_absmax(model: nn.Module, module: str) -> float:
    """Largest |weight| of a whole layer (the fixed colour range of its heatmap)."""
    return float(model.get_submodule(module).weight.detach().abs().max()) or 1.0


class ChannelViewer(DisplayMixin):
    """Heatmaps of one out-in-channel's out-part and in-part, with their norms and the out-in energy."""

    def __init__(
        self,
        model: nn.Module,
        groups: GroupSet | None = None,
        example_input: Any = None,
        group: str | None = None,
        channel: int = 0,
        include_unprunable: bool = False,
    ) -> None:
        if groups is None:
            if example_input is None:
                raise ConfigError("ChannelViewer needs groups (find_groups(model, x)) or example_input to find them")
            groups = find_groups(model, example_input)
        self.model = model
        self.group_list = [g for g in groups if (include_unprunable or g.prunable) and (g.out_slices or g.dw_slices)]
        if not self.group_list:
            raise ConfigError("no out-in-channel groups to show; pass include_unprunable=True or another model")
        self.by_name = {g.name: g for g in self.group_list}
        self.energy = channel_energy(model, self.group_list, "out_in", "none", include_unprunable=True)
        self.out_energy = channel_energy(model, self.group_list, "out", "none", include_unprunable=True)
        self.readout: dict[str, Any] = {}
        self._build(group or self.group_list[0].name, channel)
        self.update()

    def _build(self, group: str, channel: int) -> None:
        """Create the controls and the FigureWidget (two heatmaps + the energy bars)."""
        self.group_dropdown = W.Dropdown(options=[(group_label(g), g.name) for g in self.group_list], value=group,
                                         description="layer pair", layout=W.Layout(width="460px"))
        g = self.by_name[group]
        self.channel_slider = W.IntSlider(value=min(channel, g.size - 1), min=0, max=g.size - 1, description="channel",
                                          continuous_update=True, layout=W.Layout(width="420px"))
        self.out_dropdown = W.Dropdown(description="out part", layout=W.Layout(width="300px"))
        self.in_dropdown = W.Dropdown(description="in part", layout=W.Layout(width="300px"))
        self._set_slice_options(g)
        self.readout_html = W.HTML()
        fig = make_subplots(rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]], row_heights=[0.62, 0.38],
                            horizontal_spacing=0.16, vertical_spacing=0.16,
                            subplot_titles=("out-part W<sup>l</sup>[i]", "in-part W<sup>l+1</sup>[:, i]",
                                            "channel energies"))
        fig.add_heatmap(z=[[0.0]], coloraxis="coloraxis", row=1, col=1, name="out",
                        hovertemplate="in ch %{y}, tap %{x}: %{z:.4g}<extra></extra>")
        fig.add_heatmap(z=[[0.0]], coloraxis="coloraxis2", row=1, col=2, name="in",
                        hovertemplate="out ch %{y}, tap %{x}: %{z:.4g}<extra></extra>")
        fig.add_bar(x=[], y=[], name="out-part ‖W<sup>l</sup>[i]‖²", marker_color=OUT_COLOR, row=2, col=1)
        fig.add_bar(x=[], y=[], name="in-part ‖W<sup>l+1</sup>[:, i]‖²", marker_color=IN_COLOR, row=2, col=1)
        fig.add_scatter(x=[0], y=[0.0], mode="markers", name="current channel", hoverinfo="skip", row=2, col=1,
                        marker=dict(symbol="triangle-down", size=11, color=CURRENT_COLOR))
        fig.update_layout(
            height=640, autosize=True, template="simple_white", barmode="stack", margin=dict(l=60, r=20, t=50, b=50),
            coloraxis=dict(colorscale="RdBu_r", cmid=0, colorbar=dict(x=0.42, len=0.55, y=0.75, thickness=12)),
            coloraxis2=dict(colorscale="RdBu_r", cmid=0, colorbar=dict(x=1.0, len=0.55, y=0.75, thickness=12)),
            legend=dict(orientation="h", y=-0.12, x=0), clickmode="event",
        )
        fig.update_yaxes(autorange="reversed", row=1)
        fig.update_xaxes(title_text="kernel tap (kh·kw)", row=1)
        fig.update_yaxes(title_text="input channel", row=1, col=1)
        fig.update_yaxes(title_text="output channel of l+1", row=1, col=2)
        fig.update_xaxes(title_text="channel index", row=2, col=1)
        fig.update_yaxes(title_text="energy", row=2, col=1)
        self.fig = live_figure(fig)
        for trace in self.fig.data[2:4]:  # the two energy bar traces
            trace.on_click(self._on_bar_click)
        for w in (self.channel_slider, self.out_dropdown, self.in_dropdown):
            w.observe(self._on_control, names="value")
        self.group_dropdown.observe(self._on_group, names="value")
        self.widget = W.VBox([
            W.HBox([self.group_dropdown, self.channel_slider], layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.out_dropdown, self.in_dropdown], layout=W.Layout(flex_flow="row wrap")),
            self.readout_html, self.fig,
        ])
        self.widget.add_class("oicsr-channel-viewer")  # a stable hook for page styling and the browser tests

    def _set_slice_options(self, g: ChannelGroup) -> None:
        """Fill the out/in part selectors (hidden when the pair has only one of each)."""
        outs = [s.module for s in g.slices if s.kind in ("out", "dw")]
        ins = [s.module for s in g.in_slices] or ["(none)"]
        for dd, opts in ((self.out_dropdown, outs), (self.in_dropdown, ins)):
            dd.options = opts
            dd.value = opts[0]
            dd.layout.display = "none" if len(opts) == 1 else None

    # ------------------------------------------------------------------ setters
    def set_group(self, name: str) -> None:
        """Select the layer pair (group name)."""
        if name not in self.by_name:
            raise ConfigError(f"no group named {name!r}; known: {list(self.by_name)[:6]}...")
        self.group_dropdown.value = name

    def set_channel(self, i: int) -> None:
        """Select channel ``i`` of the current pair."""
        self.channel_slider.value = int(min(max(i, 0), self.channel_slider.max))

    def _on_group(self, change: dict) -> None:
        """New pair: reset the slice selectors and the channel range, then redraw."""
        g = self.by_name[change["new"]]
        for w in (self.channel_slider, self.out_dropdown, self.in_dropdown):
            w.unobserve(self._on_control, names="value")
        self._set_slice_options(g)
        self.channel_slider.value = min(self.channel_slider.value, g.size - 1)
        self.channel_slider.max = g.size - 1
        for w in (self.channel_slider, self.out_dropdown, self.in_dropdown):
            w.observe(self._on_control, names="value")
        self.update()

    def _on_control(self, change: dict) -> None:
        """Channel or slice changed: redraw."""
        self.update()

    def _on_bar_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """A click on the energy bars selects that channel."""
        inds = list(getattr(points, "point_inds", []) or [])
        if inds:
            self.set_channel(inds[0])

    # ------------------------------------------------------------------ drawing
    def update(self) -> None:
        """Redraw both heatmaps, the energy bars and the norms readout."""
        g = self.by_name[self.group_dropdown.value]
        i = int(self.channel_slider.value)
        s_out = next(s for s in g.slices if s.module == self.out_dropdown.value and s.kind in ("out", "dw"))
        s_in = next((s for s in g.in_slices if s.module == self.in_dropdown.value), None)
        z_out = out_part(self.model, s_out, i)
        z_in = in_part(self.model, s_in, i) if s_in is not None else np.zeros((1, 1), dtype=np.float32)
        energy = self.energy[g.name].numpy()
        out_e = self.out_energy[g.name].numpy()
        with redraw(self.fig):
            self.fig.data[0].z = z_out.tolist()
            self.fig.data[1].z = z_in.tolist()
            top_out = _layer_absmax(self.model, s_out.module)
            self.fig.layout.coloraxis.cmin, self.fig.layout.coloraxis.cmax = -top_out, top_out
            top_in = _layer_absmax(self.model, s_in.module) if s_in is not None else 1.0
            self.fig.layout.coloraxis2.cmin, self.fig.layout.coloraxis2.cmax = -top_in, top_in
            self.fig.data[2].x = self.fig.data[3].x = list(range(g.size))
            self.fig.update_xaxes(dtick=max(1, -(-g.size // 16)), row=2, col=1)  # whole channel indices
            in_e = (energy - out_e).clip(min=0)
            self.fig.data[2].y = out_e.tolist()
            self.fig.data[3].y = in_e.tolist()
            top = out_e + in_e  # the stacked bar's height; the marker sits just above the current one
            self.fig.data[4].x, self.fig.data[4].y = [i], [float(top[i] + 0.06 * max(float(top.max()), 1e-30))]
            ann = self.fig.layout.annotations
            ann[0].text = f"out-part {esc(s_out.module)}[{s_out.indices[i]}]  {z_out.shape[0]}×{z_out.shape[1]}"
            ann[1].text = (f"in-part {esc(s_in.module)}[:, {s_in.indices[i]}]  {z_in.shape[0]}×{z_in.shape[1]}"
                           if s_in is not None else "no in-part (no consumer)")
            ann[2].text = f"channel energies of {esc(group_label(g))} (▼ channel {i})"
        out_sq = float((z_out.astype(np.float64) ** 2).sum())
        in_sq = float((z_in.astype(np.float64) ** 2).sum()) if s_in is not None else 0.0
        rank = int((energy < energy[i]).sum())
        self.readout = {
            "group": g.name, "channel": i, "out_module": s_out.module, "in_module": s_in.module if s_in else None,
            "out_shape": tuple(z_out.shape), "in_shape": tuple(z_in.shape) if s_in is not None else None,
            "out_norm": out_sq ** 0.5, "in_norm": in_sq ** 0.5, "energy": float(energy[i]),
            "relative_energy": float(energy[i] / max(energy.max(), 1e-30)), "rank": rank,
        }
        r = self.readout
        self.readout_html.value = (
            f"channel <b>{i}</b> of {esc(group_label(g))}: ‖W<sup>l</sup>[i]‖ = {r['out_norm']:.4g}, "
            f"‖W<sup>l+1</sup>[:, i]‖ = {r['in_norm']:.4g}; out-in energy E<sub>i</sub> = {r['energy']:.4g} "
            f"({r['relative_energy']:.1%} of the pair's strongest; rank {rank + 1} of {g.size}, lowest first)"
        )
