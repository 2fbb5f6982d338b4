"""Evaluation: classification (image and study level), localisation against evidence masks,
faithfulness, sanity checks, robustness, complexity, map agreement, shortcut tests, and checked claims
(claim vs control with bootstrap CIs, :mod:`.claims`)."""
from medxai_lib.evaluate.claims import ClaimResult, claim, identity, parse_line, skipped
from medxai_lib.evaluate.classification import binary_metrics, grade_kappa, mura_report, study_level
from medxai_lib.evaluate.faithfulness import deletion_insertion
from medxai_lib.evaluate.localisation import (auprc, energy_in_mask, localisation_summary, mask_fraction,
                                              pointing_game, topk_iou)
from medxai_lib.evaluate.robustness import max_sensitivity, sparseness
from medxai_lib.evaluate.sanity import cascading_randomization, map_similarity, randomization_order
from medxai_lib.evaluate.similarity import pearson_per_map

__all__ = ["ClaimResult", "auprc", "claim", "identity", "parse_line", "skipped", "binary_metrics", "grade_kappa", "cascading_randomization", "deletion_insertion", "energy_in_mask",
           "localisation_summary", "map_similarity", "mask_fraction", "max_sensitivity", "mura_report",
           "pearson_per_map", "pointing_game", "randomization_order", "sparseness", "study_level", "topk_iou"]
