"""Multi-GPU (or multi-process CPU) training with ``torchrun``: every rank runs :func:`medxai_lib.train.fit`
inside one process group; ``fit`` wraps the model in ``DistributedDataParallel``, shards the data with a
``DistributedSampler`` and lets rank 0 alone log and write the checkpoint.

    torchrun --standalone --nproc_per_node 2 -m medxai_lib.distributed --recipe radiograph --epochs 12
    torchrun --standalone --nproc_per_node 2 -m medxai_lib.distributed --recipe smoke --out /tmp/ddp

Backend: NCCL when CUDA is available, else gloo. ``--recipe smoke`` trains a tiny model for a few steps
and writes each rank's final parameters to ``--out`` (the DDP test compares them).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist


def init_from_environment() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, master address)."""
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"environment: {missing} not set; start this module with torchrun "
                           "(torchrun --standalone --nproc_per_node N -m medxai_lib.distributed ...)")
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _smoke(epochs: int, out: Path, device: torch.device) -> None:
    from medxai_lib.data import RadiographPhantom
    from medxai_lib.models import densenet_small
    from medxai_lib.train import TrainConfig, fit
    torch.manual_seed(0)                      # the same initial weights on every rank
    data = RadiographPhantom(24, size=32, seed=0)
    model = densenet_small(num_classes=1, in_channels=1)
    fit(model, data, None, TrainConfig(epochs=epochs, batch_size=4, lr=1e-3), device=device, show_progress=False)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({name: p.detach().cpu() for name, p in model.named_parameters()}, out / f"rank{dist.get_rank()}.pt")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DDP training under torchrun")
    parser.add_argument("--recipe", choices=("radiograph", "smoke"), default="radiograph")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--arch", default="densenet169")
    parser.add_argument("--data-root", default=None, help="folder holding MURA-v1.1/ (default: the phantom)")
    parser.add_argument("--out", default="runs/ddp")
    args = parser.parse_args(argv)
    rank, world, device = init_from_environment()
    try:
        if args.recipe == "smoke":
            _smoke(args.epochs or 2, Path(args.out), device)
        else:
            from medxai_lib.train.recipes import radiograph_classifier
            trained = radiograph_classifier(image_size=args.image_size, arch=args.arch, data_root=args.data_root,
                                            epochs=args.epochs or 12, device=str(device))
            if rank == 0:
                print(f"[rank 0/{world}] trained; checkpoint {trained.fit.checkpoint}; last epoch {trained.fit.history[-1]}")
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
