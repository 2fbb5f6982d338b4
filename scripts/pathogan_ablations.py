"""Retraining ablations of notebook 06's Patho-GAN generator: too slow for CI (about 2-3 min per seed on two
CPU cores), so they are a script. For each seed it rebuilds the notebook's detector, descriptor bank, healthy
training fundi, held-out vessel maps and independent lesion reader (the notebook's own recipes and parameter
defaults, read from its ``parameters`` cell, so cached models are shared with it), then trains the default
local generator and one generator per change:

* ``adversarial off``: adversarial weight 0;
* ``adversarial x200 (paper's 1)``: weight 1, as in Niu et al.;
* ``pixel-only detail``: the feature term of the detail loss switched off;
* ``no disc channel``: the generator sees the vessel map only (the model before the optic-disc channel), so it
  has to guess the disc from where the vessels converge;
* ``default, other seed``: the default config with another generator seed — the run-to-run null. A change
  "changes the output" only if it moves the syntheses further than this null does.

It prints and writes a markdown table (``--out``) with, per variant and seed: mean |pixel difference| of its
inoculated syntheses to the default's (same vessel maps, descriptors and z), the o_O detector's mean grade of
them, the independent reader's P(lesion) at the boxes, the real-vs-synthetic AUC (a stand-in for realism, not
a human rating), the optic-disc edge ratio of descriptor-free syntheses, and the last-25-step mean adversarial
loss.

    python scripts/pathogan_ablations.py --seeds 0 1 2 [--out runs/ablations/pathogan.md]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import papermill as pm
import torch

from medxai_lib.data import FundusPhantom
from medxai_lib.evaluate.studies.inoculation import disc_edge_ratio, predicted_scores, read_boxes, two_sample_auc
from medxai_lib.explain.descriptors import DescriptorBank, descriptors_per_image
from medxai_lib.models.pathogan import anatomy_map
from medxai_lib.train.pathogan import PathoGANConfig, fit_pathogan, random_placements, synthesize
from medxai_lib.train.recipes import dr_detector, lesion_type_classifier

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_koch_descriptors_gan.ipynb"
VARIANTS = {"default": {}, "adversarial off": {"adversarial_weight": 0.0},
            "adversarial x200 (paper's 1)": {"adversarial_weight": 1.0},
            "pixel-only detail": {"detail_features": False}, "no disc channel": {"disc_channel": False},
            "default, other seed": {"seed_offset": 100}}


def notebook_defaults() -> dict:
    """The ``parameters`` cell of notebook 06, as papermill reads it."""
    return {name: eval(spec["default"]) for name, spec in pm.inspect_notebook(str(NOTEBOOK)).items()}  # noqa: S307


def run_seed(seed: int, p: dict) -> dict[str, dict[str, float]]:
    """Train every variant for one seed and measure it (see the module docstring)."""
    size = p["image_size"]
    detector = dr_detector(seed=seed, image_size=size, n_train=p["n_detector_train"], n_val=p["n_detector_val"],
                           epochs=p["detector_epochs"], restarts=2).model
    source = FundusPhantom(p["n_source"], size=size, seed=seed + 2000, grade_probs=(0, 0, 0.5, 0.5, 0), normalize=False)
    bank = DescriptorBank.union(descriptors_per_image(detector, source, raw=True, threshold=p["threshold"]))
    healthy = FundusPhantom(p["n_healthy"], size=size, seed=seed + 3000, healthy=True, normalize=False)
    reader = lesion_type_classifier(seed=seed, image_size=size, n_train=p["n_classifier_train"], crop=p["crop"]).model
    test = FundusPhantom(p["n_test"], size=size, seed=seed + 4000, healthy=True, normalize=False)
    vessels, fov, real, disc = (torch.stack([test[i][k] for i in range(len(test))]) for k in ("vessels", "fov", "image", "disc"))
    more = FundusPhantom(p["n_realism"], size=size, seed=seed + 5000, healthy=True, normalize=False)
    v_r, f_r, real_r, d_r = (torch.stack([more[i][k] for i in range(len(more))]) for k in ("vessels", "fov", "image", "disc"))
    rng = np.random.default_rng(seed)
    kinds = [k for k in ("haemorrhage", "hard_exudate", "cotton_wool") if len(bank.filter(kind=k))]
    placed = [DescriptorBank.union([random_placements(bank.filter(kind=k), fov[i, 0], 2, rng) for k in kinds])
              for i in range(len(test))]
    placed_r = [random_placements(bank, f_r[i, 0], 5, rng) for i in range(len(more))]
    data_key = {"healthy": p["n_healthy"], "size": size, "seed": seed}
    rows, reference = {}, None
    for name, change in VARIANTS.items():
        settings = {k: v for k, v in change.items() if k != "seed_offset"}
        config = PathoGANConfig(steps=p["gan_steps"], width=p["gan_width"], batch_size=p["gan_batch"],
                                seed=seed + change.get("seed_offset", 0), **settings)
        result = fit_pathogan(detector, healthy, bank, config, data_key=data_key, show_progress=False)
        disc_aware = result.generator.anatomy_channels == 2
        anatomy, anatomy_r = (anatomy_map(vessels, disc), anatomy_map(v_r, d_r)) if disc_aware else (vessels, v_r)
        inoculated = synthesize(result.generator, anatomy, fov, placed).cpu()
        clean = synthesize(result.generator, anatomy, fov, DescriptorBank()).cpu()
        reference = inoculated if reference is None else reference
        rows[name] = {"mean abs pixel change vs default": float((inoculated - reference).abs().mean()),
                      "o_O grade, inoculated": float(predicted_scores(detector, inoculated).mean()),
                      "reader P(lesion) at boxes": float(read_boxes(reader, inoculated, placed).p_lesion.mean()),
                      "real-vs-synthetic AUC": two_sample_auc(real_r, synthesize(result.generator, anatomy_r, f_r, placed_r).cpu(), seed=seed),
                      "disc edge / real": float(disc_edge_ratio(clean, real, disc).mean()),
                      "adversarial loss (last 25 steps)": float(np.mean([h["adversarial"] for h in result.history[-25:]]))}
    return rows


def table(results: dict[int, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown: one row per variant and seed."""
    metrics = list(next(iter(next(iter(results.values())).values())))
    lines = ["| variant | seed | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for name in VARIANTS:
        for seed, rows in results.items():
            lines.append(f"| {name} | {seed} | " + " | ".join(f"{rows[name][m]:.3f}" for m in metrics) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ablations" / "pathogan.md")
    args = parser.parse_args(argv)
    params = notebook_defaults()
    results, started = {}, time.time()
    for seed in args.seeds:
        results[seed] = run_seed(seed, params)
        print(f"seed {seed} done ({time.time() - started:.0f} s)", flush=True)
    lines = [f"Patho-GAN retraining ablations (notebook 06 defaults: {params['gan_steps']} steps, {params['image_size']} px), "
             f"seeds {', '.join(map(str, args.seeds))}; {time.time() - started:.0f} s.", "", *table(results)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
