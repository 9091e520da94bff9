"""Live explorers (ipywidgets + plotly FigureWidget) over the library; they hold no math of their own.

    EnergyExplorer({"l2": m1, "oicsr_gl": m2}, x)        # sorted out-in energies, threshold marks
    PruningExplorer({"l2": m1, "oicsr_gl": m2}, data)    # FLOPs slider -> Algorithm 1 live + accuracy
    ChannelViewer(model, groups)                         # out-part / in-part heatmaps of one channel

Each has ``.widget`` (display it, or let Jupyter/Voila display the object), programmatic
setters (``set_ratio``, ``set_group``, ...), a ``readout`` dict and ``close()`` (closes the
widgets; the pruning explorer also stops and joins its background accuracy worker, which
interpreter exit does for every explorer).
"""

from .channels import ChannelViewer
from .energy import EnergyExplorer
from .pruning import PruningExplorer

__all__ = ["ChannelViewer", "EnergyExplorer", "PruningExplorer"]
