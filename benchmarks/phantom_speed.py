"""Rendering speed of the radiograph phantom on one core (target: >= 200 images/s at 128 px)."""
import time

import torch

from medxai_lib.data import RadiographPhantom

torch.set_num_threads(1)
for size in (96, 128, 256):
    ds = RadiographPhantom(200, size=size, seed=0, cache=False, marker_correlation=0.5)
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    rate = len(ds) / (time.perf_counter() - start)
    print(f"{size}px: {rate:.0f} images/s ({len(ds)} images)")
