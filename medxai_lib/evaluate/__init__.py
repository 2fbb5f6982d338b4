"""Evaluation: metrics (classification at image and study level, localisation against evidence masks,
faithfulness, sanity checks, robustness, complexity, text), the studies behind each notebook (dissection, blocks
and shortcut, scoreboard, reports, inoculation, surrogates), and checked claims: :mod:`.claims` gives every
comparison its verdict against all its controls, :mod:`.stats` is the one module that resamples (bootstrap CIs
over units, or draws x units)."""
from medxai_lib.evaluate.claims import ClaimResult, claim, identity, parse_line, skipped
from medxai_lib.evaluate.classification import binary_metrics, grade_kappa, mura_report, study_level
from medxai_lib.evaluate.faithfulness import deletion_insertion
from medxai_lib.evaluate.localisation import (auprc, energy_in_mask, localisation_summary, mask_fraction,
                                              pointing_game, topk_iou)
from medxai_lib.evaluate.robustness import max_sensitivity, sparseness
from medxai_lib.evaluate.sanity import randomization_order

__all__ = ["ClaimResult", "auprc", "claim", "identity", "parse_line", "skipped", "binary_metrics", "grade_kappa", "deletion_insertion", "energy_in_mask",
           "localisation_summary", "mask_fraction", "max_sensitivity", "mura_report",
           "pointing_game", "randomization_order", "sparseness", "study_level", "topk_iou"]
