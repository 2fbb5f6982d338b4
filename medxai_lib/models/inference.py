"""Inference helpers every layer may use: logits of a model over a dataset, probabilities from logits."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medxai_lib.runtime import resolve_device


def images_and_labels(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Collate only what training reads (per-item metadata such as lesion box lists vary in length)."""
    batch = {"image": torch.stack([item["image"] for item in items])}
    if "label" in items[0]:
        batch["label"] = torch.stack([torch.as_tensor(item["label"]) for item in items])
    return batch


INFERENCE_BATCH = 16   # on a 2-core CPU a conv net's channels-last forward costs 1.3-2.5x more per image at 32-256 images than at 16


def _cpu_conv_net(model: object) -> bool:
    if not isinstance(model, nn.Module) or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False    # under DDP the parameters' layout belongs to the process group
    params = list(model.parameters())
    return any(p.ndim == 4 for p in params) and all(p.device.type == "cpu" for p in params)


def _channels_last(arg: Any) -> Any:
    """4-D tensors (also inside a list or tuple) in channels-last order; anything else as it is."""
    if isinstance(arg, torch.Tensor) and arg.ndim == 4:
        return arg.contiguous(memory_format=torch.channels_last)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_channels_last(a) for a in arg)
    return arg


@contextmanager
def fast_forward(model: nn.Module | Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """A function that runs ``model`` on ``(N, C, H, W)`` images (and any further inputs: 4-D maps, also in a
    list, go channels-last with them, e.g. a generator's field of view and descriptor maps), for forward-only work (no hooks, no
    gradients): a conv net on the CPU runs in channels-last memory order (oneDNN's fast path; 2.3-2.5x
    faster per image here at 16 images per call, ``benchmarks/inference_layout.py``), with its parameters' usual layout restored on exit, also when the body raises.
    Outputs are handed back in the usual layout and equal the plain forward's up to float round-off
    (about 1e-7). A model whose forward needs contiguous activations (``.view`` on a feature map) is
    detected on its first call and run as usual from then on; other models are called as they are."""
    if not _cpu_conv_net(model):
        yield model
        return
    conv = next(p for p in model.parameters() if p.ndim == 4)
    was_channels_last = conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    model.to(memory_format=torch.channels_last)
    state = {"fast": True}

    def run(images: torch.Tensor, *args: Any) -> Any:
        if state["fast"] and isinstance(images, torch.Tensor) and images.ndim == 4:
            try:
                out = model(_channels_last(images), *(_channels_last(a) for a in args))
                return out.contiguous() if isinstance(out, torch.Tensor) else out
            except RuntimeError:   # e.g. view() on a channels-last feature map: the usual layout from now on
                state["fast"] = False
                model.to(memory_format=torch.contiguous_format)
        return model(images, *args)

    try:
        yield run
    finally:
        model.to(memory_format=torch.channels_last if was_channels_last else torch.contiguous_format)


@torch.no_grad()
def in_chunks(fn: Callable[..., Any], images: torch.Tensor, *args: Any, size: int = INFERENCE_BATCH, **kwargs: Any) -> Any:
    """``fn(images, *args, **kwargs)`` computed ``size`` images at a time and concatenated along the first
    axis (a tensor, or a tuple/list of tensors), without gradients. For per-image computations in eval mode
    (``model.diagnose``, ``block_contributions``, ...): the same values as one call, faster on a CPU for large
    batches. ``args`` tensors with ``len(images)`` rows are split with the images; other arguments are passed whole."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    if not isinstance(images, torch.Tensor) or images.ndim < 1 or len(images) == 0:
        raise ValueError(f"images: expected a non-empty tensor (N, ...), got {type(images).__name__}")
    n = len(images)
    split = lambda a, i: a[i:i + size] if isinstance(a, torch.Tensor) and a.ndim and len(a) == n else a  # noqa: E731
    parts = [fn(images[i:i + size], *(split(a, i) for a in args), **kwargs) for i in range(0, n, size)]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return type(parts[0])(torch.cat(group) for group in zip(*parts))


@torch.no_grad()
def predict_logits(model: nn.Module, data: Dataset, batch_size: int = INFERENCE_BATCH, device: str | torch.device = "auto"
                   ) -> torch.Tensor:
    """Logits ``(N, K)`` of ``model`` on every item of ``data`` (dicts with ``image``), in order
    (through :func:`fast_forward`)."""
    device = resolve_device(device)
    was_training = model.training
    model.eval().to(device)
    try:
        with fast_forward(model) as run:
            out = [run(batch["image"].to(device)).cpu()
                   for batch in DataLoader(data, batch_size=batch_size, collate_fn=images_and_labels)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """Sigmoid of a one-output model ``(N, 1)`` -> ``(N,)``; softmax otherwise -> ``(N, K)``."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0]).numpy()
    return torch.softmax(logits, 1).numpy()
