"""Metrics: one number per image, study or report, with no experiment design in them.

:mod:`.classification` (image and study level, MURA), :mod:`.study_metrics` (study AUROC and kappa with CIs,
per body part), :mod:`.localisation` (maps against evidence masks; each metric's good direction and chance
level beside its definition), :mod:`.faithfulness` (deletion and insertion), :mod:`.robustness` (sensitivity,
sparseness), :mod:`.sanity` (model randomisation), :mod:`.text` (BLEU, ROUGE-L, CIDEr, METEOR) and
:mod:`.baselines` (the model-free maps every explanation must beat)."""
