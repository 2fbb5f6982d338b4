"""Interactive explorers: ipywidgets controls that redraw a figure, with a static fallback.

Under papermill / nbval (no widget frontend) or with ``MEDXAI_STATIC_WIDGETS=1`` an explorer draws one
static figure with the default values and never fails; in JupyterLab it shows the controls.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import matplotlib.pyplot as plt


def widgets_enabled() -> bool:
    """True when running in an IPython kernel with ipywidgets and not told to stay static."""
    if os.environ.get("MEDXAI_STATIC_WIDGETS", "0") not in ("", "0"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def explore(draw: Callable[..., plt.Figure | None], **controls: Any) -> Any:
    """``draw(**values)`` with ``controls`` given as ipywidgets (or plain values). Returns the widget
    (interactive mode) or the static figure drawn from each control's default value."""
    defaults = {name: getattr(control, "value", control) for name, control in controls.items()}
    if not widgets_enabled():
        figure = draw(**defaults)
        if figure is not None:
            plt.show()
        return figure
    import ipywidgets
    from IPython.display import display

    def redraw(**values: Any) -> None:
        figure = draw(**values)
        if figure is not None:
            plt.show()

    widget = ipywidgets.interactive(redraw, **controls)
    display(widget)
    return widget
