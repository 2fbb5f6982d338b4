"""Figures: overlays and grids (explorers join later)."""
from medxai_lib.viz.overlays import plot_gallery, plot_map_grid, to_display

__all__ = ["plot_gallery", "plot_map_grid", "to_display"]
