"""Figures at lecture standard: overlays and grids, signed maps, galleries, per-notebook figures, and the
ipywidgets explorers (:mod:`.explorer`)."""
import matplotlib

from medxai_lib.viz.colours import CATEGORY_COLOURS, CONFOUNDER_COLOUR, EVIDENCE_COLOUR, draw_contour
from medxai_lib.viz.gallery import plot_with_masks
from medxai_lib.viz.overlays import plot_feature_maps, plot_gallery, plot_map_grid, to_display


def notebook_style(dpi: int = 100, image_format: str = "png", jpeg_quality: int = 88) -> None:
    """Figure defaults for committed notebooks: ``dpi`` >= 100 (the style guide) and, inside IPython, the
    inline figures' format: ``"png"`` or ``"jpeg"`` (for notebooks full of noisy heatmaps, which PNG
    compresses poorly; ``jpeg_quality`` 1-95)."""
    if not isinstance(dpi, int) or dpi < 100:
        raise ValueError(f"dpi: expected an int >= 100 (docs' style guide), got {dpi!r}")
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"image_format: expected 'png' or 'jpeg', got {image_format!r}")
    if not 1 <= jpeg_quality <= 95:
        raise ValueError(f"jpeg_quality: expected 1..95, got {jpeg_quality!r}")
    matplotlib.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "image.interpolation": "nearest"})
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebooks' kernel
        return
    if get_ipython() is not None:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        kwargs = {"pil_kwargs": {"quality": jpeg_quality}} if image_format == "jpeg" else {}
        set_matplotlib_formats(image_format, bbox_inches="tight", **kwargs)


__all__ = ["CATEGORY_COLOURS", "CONFOUNDER_COLOUR", "EVIDENCE_COLOUR", "draw_contour", "notebook_style",
           "plot_feature_maps", "plot_gallery", "plot_map_grid", "plot_with_masks", "to_display"]
