"""How many perturbed images to forward at once: sized from the device's free memory."""
from __future__ import annotations

import os

import torch
from torch import nn

from medxai_lib.models.inference import INFERENCE_BATCH
from medxai_lib.explain.capture import explaining


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with jupyter
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def activation_bytes_per_image(model: nn.Module, images: torch.Tensor) -> int:
    """Bytes of all module outputs for one image in a no-grad forward (an upper bound of its peak)."""
    total = [0]

    def hook(_m: nn.Module, _i: tuple, out: object) -> None:
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * out.element_size()

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.no_grad(), explaining(model):
            model(images[:1])
    finally:
        handle.remove()
    return max(total[0], images[0].numel() * images.element_size())


def auto_chunk_size(model: nn.Module, images: torch.Tensor, upper: int, memory_fraction: float = 0.25) -> int:
    """How many images to forward at once so that activations use at most ``memory_fraction`` of the
    free memory of the images' device; clipped to ``[1, upper]``, and on a CPU to at most
    :data:`~medxai_lib.models.inference.INFERENCE_BATCH` (larger batches cost more per image there)."""
    if images.device.type == "cpu":
        upper = min(upper, INFERENCE_BATCH)
    per_image = activation_bytes_per_image(model, images)
    budget = memory_fraction * _available_bytes(images.device)
    return int(max(1, min(upper, budget // per_image)))


def check_chunk_size(chunk_size: int | str) -> None:
    if chunk_size != "auto" and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size: expected 'auto' or a positive int, got {chunk_size!r}")


def chunk_size_for(model: nn.Module, images: torch.Tensor, upper: int, chunk_size: int | str) -> int:
    """Resolve a ``chunk_size`` argument (``"auto"`` or an int) to a number in ``[1, upper]``."""
    check_chunk_size(chunk_size)
    if chunk_size == "auto":
        return auto_chunk_size(model, images, upper) if isinstance(model, nn.Module) else min(upper, 64)
    return int(min(chunk_size, upper))
