"""The shared capture core: resolve layers, check inputs, hook activations, pick target classes.

Every CAM-style method runs one forward pass through :func:`capture` and then asks for gradients
of the selected scores with respect to the captured activations only (``torch.autograd.grad``),
never for the parameters.
"""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, Union

import torch
from torch import nn

LayerSpec = Union[str, nn.Module]
ClassSpec = Union[None, int, Sequence[int], str, torch.Tensor]


def _first_conv(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)


def check_images(model: nn.Module, images: torch.Tensor) -> None:
    """Raise a clear error unless ``images`` is a non-empty ``(B, C, H, W)`` float tensor whose C
    matches the model's first layer."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images: expected a 4-D tensor (B, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("images: empty batch (B = 0); pass at least one image")
    if not images.is_floating_point():
        raise TypeError(f"images: expected a floating-point tensor, got dtype {images.dtype}")
    first = _first_conv(model) if isinstance(model, nn.Module) else None
    if isinstance(first, nn.Conv2d) and images.shape[1] != first.in_channels:
        raise ValueError(f"images: the model's first conv expects {first.in_channels} channels, "
                         f"got {images.shape[1]} (shape {tuple(images.shape)})")


def resolve_layer(model: nn.Module, layer: LayerSpec) -> tuple[str, nn.Module]:
    """``layer`` (a dotted name such as ``"features.denseblock2"`` or a submodule) -> (name, module)."""
    named = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in named.items():
            if module is layer:
                return name or "<model>", module
        raise ValueError(f"layer: the module {type(layer).__name__} given is not a submodule of the model")
    if not isinstance(layer, str):
        raise TypeError(f"layer: expected a module or a dotted name, got {type(layer).__name__}")
    if layer in named and layer != "":
        return layer, named[layer]
    valid = [n for n in named if n]
    close = difflib.get_close_matches(layer, valid, n=5, cutoff=0.5)
    shallow = [n for n in valid if n.count(".") <= 1]
    listing = ", ".join(shallow[:60]) + (" ..." if len(shallow) > 60 else "")
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(f"layer: no submodule named {layer!r}.{hint} Valid names include: {listing} "
                     f"({len(valid)} in all; see model.named_modules())")


def resolve_layers(model: nn.Module, layer: LayerSpec | Sequence[LayerSpec]) -> tuple[list[tuple[str, nn.Module]], bool]:
    """Returns the resolved layers and whether a single layer was asked for."""
    if isinstance(layer, (str, nn.Module)):
        return [resolve_layer(model, layer)], True
    if isinstance(layer, Sequence) and len(layer) > 0:
        resolved = [resolve_layer(model, item) for item in layer]
        names = [n for n, _ in resolved]
        if len(set(names)) != len(names):
            raise ValueError(f"layer: duplicate layers in {names}")
        return resolved, False
    raise ValueError(f"layer: expected a module, a dotted name or a non-empty list of them, got {layer!r}")


def resolve_classes(classes: ClassSpec, logits: torch.Tensor) -> torch.Tensor:
    """Target classes as a ``(B, T)`` long tensor.

    ``None`` = every output class (T = K); an int; a sequence of ints (the same for every image);
    ``"pred"`` = each image's argmax (T = 1; for one-output models, the single output);
    a ``(B,)`` or ``(B, T)`` tensor = per-image targets.
    """
    batch, num_classes = logits.shape
    if classes is None:
        idx = torch.arange(num_classes, device=logits.device).expand(batch, -1)
    elif isinstance(classes, str):
        if classes != "pred":
            raise ValueError(f"classes: the only string accepted is 'pred', got {classes!r}")
        idx = logits.argmax(1, keepdim=True)
    elif isinstance(classes, torch.Tensor):
        idx = classes.to(logits.device).long()
        idx = idx[:, None] if idx.ndim == 1 else idx
        if idx.ndim != 2 or idx.shape[0] != batch:
            raise ValueError(f"classes: a tensor of targets must be (B,) or (B, T) with B = {batch}, "
                             f"got shape {tuple(classes.shape)}")
    elif isinstance(classes, (int,)) and not isinstance(classes, bool):
        idx = torch.full((batch, 1), classes, device=logits.device, dtype=torch.long)
    elif isinstance(classes, Sequence) and len(classes) > 0 and all(
            isinstance(c, int) and not isinstance(c, bool) for c in classes):
        idx = torch.tensor(list(classes), device=logits.device).expand(batch, -1)
    else:
        raise TypeError(f"classes: expected None, an int, a non-empty sequence of ints, 'pred' or a "
                        f"tensor, got {classes!r}")
    if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)].unique().tolist()
        raise ValueError(f"classes: {bad} out of range for a model with {num_classes} output(s) "
                         f"(valid: 0..{num_classes - 1})")
    return idx


@contextmanager
def eval_mode(model: nn.Module | Callable) -> Iterator[nn.Module | Callable]:
    """Temporarily switch to eval mode (BatchNorm in train mode would mix images of the batch)."""
    if not isinstance(model, nn.Module):  # a plain callable (model-agnostic methods)
        yield model
        return
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def capture(model: nn.Module, layers: Sequence[tuple[str, nn.Module]]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that store each layer's output (graph kept) in the yielded dict.

    An output that does not require grad (frozen model, no-grad input) is re-rooted as a leaf that
    does, so gradients w.r.t. it are always available.
    """
    store: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                raise ValueError(f"layer: {name!r} must output a (B, K, h, w) tensor, got "
                                 f"{type(output).__name__ if not isinstance(output, torch.Tensor) else tuple(output.shape)}")
            if not output.requires_grad:
                output = output.detach().requires_grad_(True)
                store[name] = output
                return output
            store[name] = output
            return None
        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in layers]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def forward_with_capture(model: nn.Module, images: torch.Tensor, layers: Sequence[tuple[str, nn.Module]]
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass; returns ``(logits (B, K), {layer name: activation (B, K_l, h, w)})``."""
    with torch.enable_grad(), capture(model, layers) as store:
        logits = model(images)
    if logits.ndim != 2:
        raise ValueError(f"model: expected logits of shape (B, num_classes), got {tuple(logits.shape)}")
    missing = [name for name, _ in layers if name not in store]
    if missing:
        raise ValueError(f"layer: {missing} did not run during the forward pass")
    return logits, store
