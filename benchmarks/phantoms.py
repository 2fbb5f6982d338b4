"""Rendering speed of every phantom on one core at 128 px (targets: >= 100 images/s; fundus >= 50)."""
import time

import torch

from medxai_lib.data import FundusPhantom, HistologyPhantom, RadiographPhantom, SkinLesionPhantom

torch.set_num_threads(1)
TARGETS = {"radiograph": 100, "skin": 100, "histology": 100, "fundus": 50}
builders = {"radiograph": lambda: RadiographPhantom(80, size=128, cache=False, marker_correlation=0.5),
            "skin": lambda: SkinLesionPhantom(200, size=128, cache=False),
            "histology": lambda: HistologyPhantom(200, size=128, cache=False),
            "fundus": lambda: FundusPhantom(120, size=128, cache=False)}
print("| phantom | images/s at 128 px, 1 core | target |")
print("|---|---|---|")
for name, build in builders.items():
    ds = build()
    ds[0]  # warm-up
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    rate = len(ds) / (time.perf_counter() - start)
    print(f"| {name} | {rate:.0f} | >= {TARGETS[name]} {'ok' if rate >= TARGETS[name] else 'MISSED'} |")
