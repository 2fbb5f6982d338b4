"""Figures: overlays and grids (explorers join later)."""
import matplotlib

from medxai_lib.viz.colours import CATEGORY_COLOURS, CONFOUNDER_COLOUR, EVIDENCE_COLOUR, draw_contour
from medxai_lib.viz.gallery import plot_with_masks
from medxai_lib.viz.overlays import plot_feature_maps, plot_gallery, plot_map_grid, to_display


def notebook_style(dpi: int = 72) -> None:
    """Figure defaults for committed notebooks: modest dpi keeps the files small."""
    matplotlib.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "image.interpolation": "nearest"})


__all__ = ["CATEGORY_COLOURS", "CONFOUNDER_COLOUR", "EVIDENCE_COLOUR", "draw_contour", "notebook_style",
           "plot_feature_maps", "plot_gallery", "plot_map_grid", "plot_with_masks", "to_display"]
