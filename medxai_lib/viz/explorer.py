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


def draw_attribution(model: Any, images: Any, image: int = 0, method: str = "grad_cam", layer: str | None = None,
                     target: int = 0, threshold: float = 0.0, normalized_images: bool = True) -> plt.Figure:
    """One image and one method's heatmap for class ``target``: the figure behind :func:`attribution_explorer`.
    ``images`` is ``(B, C, H, W)``. The map is divided by its largest magnitude, so 0 stays 0 (a near-zero map
    stays dark instead of being stretched to full brightness) and its raw maximum is printed in the title; a
    map with negative values is drawn on a diverging scale centred on 0. ``threshold`` hides the pixels whose
    magnitude is below that fraction of the maximum. A colour bar gives the scale."""
    import numpy as np

    from medxai_lib.explain.registry import METHODS, as_heatmap, attribute
    from medxai_lib.viz.overlays import to_display
    if not 0 <= image < len(images):
        raise ValueError(f"image: expected an index in [0, {len(images)}), got {image!r}")
    x = images[image:image + 1]
    raw = attribute(model, x, method, layer=layer if METHODS[method].needs_layer else None, classes=[target])
    heat = as_heatmap(raw, x.shape[-2:])[0, 0].detach().float().cpu()
    peak = float(heat.abs().max())
    signed = bool((heat < 0).any())
    heat = heat / max(peak, 1e-12)
    shown = np.ma.masked_where(heat.abs().numpy() < threshold, heat.numpy())   # threshold 0 hides nothing
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 3))
    picture = to_display(x[0], normalized_images)
    for ax in axes:
        ax.imshow(picture, cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
    drawn = axes[1].imshow(shown, cmap="RdBu_r" if signed else "magma", alpha=0.7, vmin=-1 if signed else 0, vmax=1)
    bar = fig.colorbar(drawn, ax=axes[1], fraction=0.046, pad=0.04)
    bar.set_label("map / max |map|", fontsize=8)
    axes[0].set_title(f"image {image}", fontsize=9)
    axes[1].set_title(f"{method}" + (f" @ {layer}" if METHODS[method].needs_layer else "") + f", class {target}\n"
                      f"max |map| = {peak:.3g}", fontsize=9)
    fig.tight_layout()
    fig.medxai_heatmap = heat          # the map drawn (divided by its largest magnitude), for tests
    return fig


def attribution_explorer(model: Any, images: Any, methods: list[str], layers: list[str], n_classes: int = 1,
                         normalized_images: bool = True) -> Any:
    """Controls for image / method / layer / class / threshold over :func:`draw_attribution`.
    Static figure (first image, first method and layer, class 0, no threshold) without a frontend."""
    import ipywidgets as widgets
    from medxai_lib.explain.registry import METHODS
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; valid: {sorted(METHODS)}")
    if not layers:
        raise ValueError("layers: give at least one layer name")

    def draw(image: int, method: str, layer: str, target: int, threshold: float) -> plt.Figure:
        return draw_attribution(model, images, image, method, layer, target, threshold, normalized_images)

    return explore(draw, image=widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
                   method=widgets.Dropdown(options=methods, value=methods[0], description="method"),
                   layer=widgets.Dropdown(options=layers, value=layers[-1], description="layer"),
                   target=widgets.IntSlider(value=0, min=0, max=max(n_classes - 1, 0), description="class"),
                   threshold=widgets.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.1, description="threshold"))
