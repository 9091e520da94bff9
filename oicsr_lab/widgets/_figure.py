"""plotly FigureWidgets whose synced state is always the figure they draw (JupyterLab and Voilà).

plotly >= 6 builds ``FigureWidget`` on anywidget and keeps each figure twice: the Python figure
(``fig.data``, ``fig.layout``) and the synced traits ``_widget_data`` / ``_widget_layout`` that a
front end reads when it creates the widget's model. plotly refreshes those traits only when the
FigureWidget itself is displayed; every other edit travels as an incremental message
(``restyle`` / ``relayout`` / ``addTraces``) that only a model already loaded in the browser applies.
An explorer shows its figures inside an ipywidgets box, so the FigureWidget is never displayed
itself, and:

- Voilà, which runs the notebook first and builds the page's models from the kernel's state
  afterwards, drew every figure empty (the traits still held the empty figure);
- JupyterLab dropped the edits that arrived before the widget's JavaScript had loaded and then
  applied later edits to traces that did not exist (``cleanData`` TypeError, "Error setting state").

So every figure here is built complete (traces and layout) before its widget exists
(:func:`live_figure`), and every edit goes through :func:`redraw`, which sends the usual
incremental update to the views on the page *and* writes the new figure into the synced traits,
so a model created later (Voilà, a reloaded page, a second view) starts from what is drawn.

The figures have a fixed height and take their width from the page (``autosize``). A view draws
before the page inserts it (plotly then falls back to a width of 700 px) and plotly refits only on
a window resize: the first render stuck out of its box (clipped legend, last bars hidden) until the
first update. So each new view, as soon as the front end reports it on the page (``_view_count``
goes up), gets one ``relayout(autosize=True)``: exactly what a window resize does.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import plotly.graph_objects as go

__all__ = ["live_figure", "publish", "redraw", "refit"]


def live_figure(fig: go.Figure) -> go.FigureWidget:
    """A FigureWidget of the complete figure ``fig``: its synced state holds every trace and the layout.

    Each view of it refits its width to its box once it is on the page (see the module docstring).
    """
    widget = go.FigureWidget(fig)
    publish(widget)

    def refit_new_view(change: dict) -> None:
        if (change["new"] or 0) > (change["old"] or 0):  # a view was inserted into the page: fit it to its box
            refit(widget)

    widget.observe(refit_new_view, names="_view_count")  # counted by the front end once a view is on the page
    return widget


def refit(fig: go.FigureWidget) -> None:
    """Fit every view of ``fig`` to the box it sits in now (what a window resize does), e.g. once its tab is shown.

    plotly's view never hears that a hidden tab became visible, so a figure first drawn in a hidden
    tab keeps the fallback width until it is refitted.
    """
    fig._send_relayout_msg({"autosize": True})  # sent even though autosize is already True in Python


def publish(fig: go.Figure) -> None:
    """Write ``fig``'s current data and layout into the traits a new front-end model reads (no-op for go.Figure)."""
    if isinstance(fig, go.FigureWidget) and hasattr(fig, "_widget_data"):
        fig._widget_data = copy.deepcopy(fig._data)
        fig._widget_layout = copy.deepcopy(fig._layout_obj._props)


@contextmanager
def redraw(fig: go.Figure) -> Iterator[go.Figure]:
    """``with redraw(fig):`` edit ``fig``; on exit one batched update is drawn and the synced state refreshed."""
    with fig.batch_update():
        yield fig
    publish(fig)
