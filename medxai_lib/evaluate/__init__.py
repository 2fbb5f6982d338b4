"""Evaluation, in three parts: :mod:`.metrics` (one number per image, study or report: classification,
localisation, faithfulness, robustness, sanity, text, and the model-free baseline maps), :mod:`.studies` (one
module per experiment family: taxonomy, dissection, blocks and shortcut, scoreboard, MDNet reports,
inoculation), and the checked claims: :mod:`.claims` gives every comparison its verdict against all its
controls, :mod:`.stats` is the one module that resamples (bootstrap CIs over units, or draws x units)."""
from medxai_lib.evaluate.claims import ClaimResult, claim, identity, parse_line, skipped
from medxai_lib.evaluate.metrics.classification import binary_metrics, grade_kappa, mura_report, study_level
from medxai_lib.evaluate.metrics.faithfulness import deletion_insertion
from medxai_lib.evaluate.metrics.localisation import (auprc, energy_in_mask, localisation_summary, mask_fraction,
                                              pointing_game, topk_iou)
from medxai_lib.evaluate.metrics.robustness import max_sensitivity, sparseness
from medxai_lib.evaluate.metrics.sanity import randomization_order

__all__ = ["ClaimResult", "auprc", "claim", "identity", "parse_line", "skipped", "binary_metrics", "grade_kappa", "deletion_insertion", "energy_in_mask",
           "localisation_summary", "mask_fraction", "max_sensitivity", "mura_report",
           "pointing_game", "randomization_order", "sparseness", "study_level", "topk_iou"]
