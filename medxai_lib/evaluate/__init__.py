"""Evaluation: classification, localisation against evidence masks."""
from medxai_lib.evaluate.classification import binary_metrics, study_level
from medxai_lib.evaluate.localisation import energy_in_mask, mask_fraction, pointing_game

__all__ = ["binary_metrics", "energy_in_mask", "mask_fraction", "pointing_game", "study_level"]
