"""Evaluation: classification (image and study level), localisation against evidence masks,
map agreement, shortcut tests."""
from medxai_lib.evaluate.classification import binary_metrics, mura_report, study_level
from medxai_lib.evaluate.localisation import energy_in_mask, localisation_summary, mask_fraction, pointing_game
from medxai_lib.evaluate.similarity import pearson_per_map

__all__ = ["binary_metrics", "energy_in_mask", "localisation_summary", "mask_fraction", "mura_report",
           "pearson_per_map", "pointing_game", "study_level"]
