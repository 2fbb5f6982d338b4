"""Can an image model read the histology phantom's attributes at notebook 05's scale? (Issue 25, step 1.)

A report model can only state an attribute that the image shows, so before any MDNet mechanism can be shown to
help, every attribute must be *readable*: an attribute probe (notebook 05's ensemble image model trained to grade
each attribute directly, :func:`medxai_lib.train.mdnet.fit_attribute_probe`, with 05's epochs, batch size and
learning rate) must grade it better than the majority grade. For each renderer setting (``HistologyPhantom``'s
``magnification``, ``strength`` and ``common_axis``) this trains probes on phantom seeds never used for claims
(11, 12, 13 by default: 05's own training/test split recipe, ``n_train`` / ``n_test`` from its parameters) with
several probe seeds, and prints one claim per attribute: probe accuracy per test image vs the majority grade of the
training set, margin 0.1, the interval resampling probe seeds (the draws), then images of all phantom seeds.

    python scripts/histology_readability.py [--phantom-seeds 11 12 13] [--probe-seeds 0 1] [--out docs/histology_readability.md]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from medxai_lib.data import ATTRIBUTES, HistologyPhantom
from medxai_lib.data.phantoms.histology import READABLE
from medxai_lib.train.mdnet import MDNetConfig, fit_attribute_probe, probe_grades, stack_dataset
from medxai_lib.evaluate.stats import Draws
from medxai_lib.evaluate.claims import claim

SETTINGS = {"subtle, the default (magnification 1, strength 1, random axis; 05 until 2026-12-08)": {},
            "magnified x2": {"magnification": 2.0},
            "magnification 2, strength 2.5, common axis 0": {"magnification": 2.0, "strength": 2.5, "common_axis": 0.0},
            "magnification 1.5, strength 3, common axis 0": {"magnification": 1.5, "strength": 3.0, "common_axis": 0.0},
            "magnification 2, strengths 3/1/3/4, common axis 0": {"magnification": 2.0, "common_axis": 0.0, "strength":
                {"pleomorphism": 3.0, "polarity": 1.0, "mitosis": 3.0, "nucleoli": 4.0}},
            "magnification 1.5, strengths 3/1.5/3/4, common axis 0": {"magnification": 1.5, "common_axis": 0.0, "strength":
                {"pleomorphism": 3.0, "polarity": 1.5, "mitosis": 3.0, "nucleoli": 4.0}},
            "magnification 1.5, strengths 3/3/3/4 (nucleoli tinted), common axis 0, regions 50%": {
                k: v for k, v in READABLE.items() if k != "elongation"},
            "READABLE: the same with nuclei elongated 2.2 (1.6)": READABLE,
            "magnification 1.25, strengths 3/3/3/4, common axis 0, regions 50%": {"magnification": 1.25, "common_axis": 0.0,
                "extent": 0.5, "strength": {"pleomorphism": 3.0, "polarity": 3.0, "mitosis": 3.0, "nucleoli": 4.0}}}
CONFIG = MDNetConfig(epochs=10, batch_size=16, lr=4e-3)     # notebook 05's parameters cell
SIZE, N_TRAIN, N_TEST, MARGIN = 64, 300, 200, 0.1


def readability(setting: dict, phantom_seeds: list[int], probe_seeds: list[int]) -> dict[str, tuple]:
    """Per attribute: (probe hits (probe seeds, images), majority-grade hits (images,)), images of all phantom seeds."""
    hits, majority = [], []
    for s in phantom_seeds:
        train = HistologyPhantom(N_TRAIN, size=SIZE, seed=s, grade_correlation=0.0, **setting)
        test = HistologyPhantom(N_TEST, size=SIZE, seed=s + 1000, grade_correlation=0.0, **setting)
        images, _ = stack_dataset(test)
        probes = [fit_attribute_probe(train, replace(CONFIG, seed=k))[0] for k in probe_seeds]
        hits.append(np.stack([probe_grades(p, images) == test.grades for p in probes]))            # (K, N, A)
        modal = np.array([np.bincount(column, minlength=3).argmax() for column in train.grades.T])
        majority.append(test.grades == modal)                                                      # (N, A)
    hits, majority = np.concatenate(hits, 1), np.concatenate(majority, 0)
    return {a: (hits[..., j].astype(float), majority[:, j].astype(float)) for j, a in enumerate(ATTRIBUTES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phantom-seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--probe-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--settings", nargs="+", type=int, help="indices into SETTINGS (default: all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start, rows, lines = time.time(), [], []
    chosen = [list(SETTINGS)[i] for i in args.settings] if args.settings else list(SETTINGS)
    for name, setting in ((n, SETTINGS[n]) for n in chosen):
        for attribute, (hits, majority) in readability(setting, args.phantom_seeds, args.probe_seeds).items():
            result = claim(f"{name}: the attribute probe grades {attribute} better than the majority grade (accuracy per image; probe seeds x images)",
                           Draws(hits, over="probe seed"), {"majority grade": majority}, margin=MARGIN, seed=0)
            lines.append(str(result))
            rows.append(f"| {name} | {attribute} | {hits.mean():.3f} | {majority.mean():.3f} | "
                        f"{' / '.join(f'{h:.2f}' for h in hits.mean(1))} | {result.verdict} |")
    took = time.time() - start
    print(f"{took:.0f} s")
    if args.out:
        args.out.write_text(
            "# Histology phantom: which attributes can an image model read? (issue 25, step 1)\n\n"
            f"Measured by `python scripts/histology_readability.py --phantom-seeds {' '.join(map(str, args.phantom_seeds))} "
            f"--probe-seeds {' '.join(map(str, args.probe_seeds))} --out {args.out}` ({time.strftime('%Y-%m-%d %H:%M')}, "
            f"2-core CPU, one torch thread, {took:.0f} s). Attribute probe: notebook 05's ensemble image model graded on "
            f"every attribute directly, {CONFIG.epochs} epochs, batch {CONFIG.batch_size}, lr {CONFIG.lr}, {N_TRAIN} training / "
            f"{N_TEST} test images per phantom seed at {SIZE} px, grades independent of each other (grade_correlation 0, "
            f"majority grade about 60%). Verdict: the CI of (probe - majority) over probe seeds x images against margin {MARGIN}.\n\n"
            "| renderer setting | attribute | probe accuracy | majority grade | per probe seed | verdict |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
