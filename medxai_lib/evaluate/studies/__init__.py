"""Studies: one module per experiment family, named like its figures in :mod:`medxai_lib.viz`.

:mod:`.taxonomy` (global surrogates, embeddings and cue importance; notebook 01), :mod:`.dissection`
(network dissection and unit ablation; 02), :mod:`.blocks` (localisation per dense block and the shortcut
test; 03), :mod:`.scoreboard` (every method on every metric, ranks with ties; 04), :mod:`.mdnet` (generated
reports, retrieval and attention per word; 05) and :mod:`.inoculation` (Koch's postulates for synthesised
lesions; 06)."""
