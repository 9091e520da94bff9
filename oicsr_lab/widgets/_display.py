"""Jupyter / Voila display of an explorer, refitting its figures, and closing every widget under it."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from ._figure import refit as refit_figure

__all__ = ["DisplayMixin", "close_widgets"]


class DisplayMixin:
    """Jupyter/Voila display of an explorer: everything delegates to ``self.widget``."""

    widget: Any

    def _ipython_display_(self) -> None:
        """Display the explorer's widget container."""
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget's mime bundle (for front ends that ask for it directly)."""
        return self.widget._repr_mimebundle_(**kwargs)

    def refit(self) -> None:
        """Fit every figure of the explorer to its box again: call it when a hidden tab or panel holding it is shown."""
        for value in vars(self).values():
            if isinstance(value, go.FigureWidget):
                refit_figure(value)

    def close(self) -> None:
        """Close the explorer's widgets (every control and figure in ``self.widget``); idempotent."""
        close_widgets(getattr(self, "widget", None))


def close_widgets(root: Any) -> None:
    """Close ``root`` and every widget under it (``Box.close`` alone leaves its children open)."""
    stack, seen = [root], set()
    while stack:
        w = stack.pop()
        if w is None or id(w) in seen:
            continue
        seen.add(id(w))
        stack.extend(getattr(w, "children", ()) or ())
        close = getattr(w, "close", None)
        if callable(close):
            close()
