"""The shared capture core: resolve layers, check inputs, hook activations, pick target classes.

Every CAM-style method runs one forward pass through :func:`capture` and then asks for gradients
of the selected scores with respect to the captured activations only (``torch.autograd.grad``),
never for the parameters.

Decisions shared by every method (docs/reliability.md lists the tests):

* Non-finite input (NaN/inf) is refused: an explanation of it would be NaN or a believable number.
* The captured activation is the hooked layer's own output: the hook keeps that tensor and hands the
  rest of the network a copy, so in-place operations after the layer (ResNet's ``out += identity``,
  ``ReLU(inplace=True)``) cannot overwrite it, and its gradient flows through the copy.
* Target classes must be integers (a float or bool tensor is refused, never truncated).
* :func:`eval_mode` restores every submodule's own ``training`` flag exactly.
* :func:`frozen_parameters` switches every parameter's ``requires_grad`` off for the call and restores
  each one's own flag afterwards (also when the call raises). With parameters that require grad,
  autograd builds the weight-gradient part of the graph and the backward does parameter work
  (14-24x slower on a 2-core CPU for DenseNet-169, issue 21), though no parameter gradient is ever
  read. :func:`explaining` (eval mode + frozen parameters) is what every explanation and evaluation
  runs under.
* Gradients are taken even when the caller is under ``torch.no_grad()`` or ``torch.inference_mode()``.
"""
from __future__ import annotations

import difflib
import numbers
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np
import torch
from torch import nn

LayerSpec = Union[str, nn.Module]
ClassSpec = Union[None, int, Sequence[int], str, torch.Tensor]


def _first_conv(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)


def _is_lazy(module: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters(recurse=False))


class _StemReached(Exception):
    """Raised by the probe hook to stop the forward pass at the first convolution."""


def _probe_stem(model: nn.Module, images: torch.Tensor) -> tuple[str, nn.Module, int] | None:
    """The first ``nn.Conv2d`` the forward pass actually runs, and how many channels reach it.

    Runs the model on one image only up to that convolution (hooks stop it before the convolution
    computes, and before a lazy module initialises). ``None`` if no convolution runs or the forward
    fails before one (the real forward will then raise its own error)."""
    found: list[tuple[str, nn.Module, int]] = []

    def make(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple) -> None:
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            found.append((name, module, -1 if first is None or first.ndim < 2 else int(first.shape[1])))
            raise _StemReached
        return hook

    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_pre_hook(make(n), prepend=True) for n, m in convs]
    try:
        with torch.no_grad(), explaining(model):
            model(images[:1])
    except _StemReached:
        pass
    except Exception:  # noqa: BLE001 - the real forward reports it
        return None
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def check_images(model: nn.Module, images: torch.Tensor) -> None:
    """Raise a clear error unless ``images`` is a non-empty, finite ``(B, C, H, W)`` float tensor of
    the model's parameter dtype whose C matches the model's first convolution.

    The first convolution is the first registered ``nn.Conv2d``; when that one does not fit (or is
    lazy), the convolution the forward pass actually runs first is found by running one image up to
    it, so models that register their modules in another order, or use ``LazyConv2d``, are judged
    right."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images: expected a 4-D tensor (B, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("images: empty batch (B = 0); pass at least one image")
    if not images.is_floating_point():
        raise TypeError(f"images: expected a floating-point tensor, got dtype {images.dtype}")
    finite = torch.isfinite(images)
    if not finite.all():
        bad = (~finite).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"images: contains NaN or infinite values (image(s) {bad[:10]} of {images.shape[0]}); "
                         "explanations of non-finite input are undefined")
    if not isinstance(model, nn.Module):
        return
    param = next((p for p in model.parameters() if not isinstance(p, nn.parameter.UninitializedParameter)), None)
    if (param is not None and param.is_floating_point() and images.dtype != param.dtype
            and not torch.is_autocast_enabled(images.device.type)):
        raise TypeError(f"images: dtype {images.dtype} differs from the model's parameters ({param.dtype}); "
                        f"convert with images.to({param.dtype}) or the model with model.to({images.dtype})")
    first = _first_conv(model)
    if not isinstance(first, nn.Conv2d) or (not _is_lazy(first) and images.shape[1] == first.in_channels):
        return
    stem = _probe_stem(model, images)
    if stem is None:
        return
    name, conv, reaching = stem
    if not _is_lazy(conv) and reaching != conv.in_channels:
        raise ValueError(f"images: the model's first conv ({name!r}) expects {conv.in_channels} channels, "
                         f"got {reaching} (images of shape {tuple(images.shape)})")


def check_scores(scores: Any, batch: int | None = None) -> torch.Tensor:
    """The model's output must be a ``(B, K)`` tensor of scores (not a tuple or dict)."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"model: expected the forward pass to return a (B, num_classes) tensor of scores, got "
                        f"{type(scores).__name__}; wrap the model so it returns the logits "
                        "(e.g. lambda x: model(x)[0] or model(x)['logits'])")
    if scores.ndim != 2 or (batch is not None and scores.shape[0] != batch):
        raise ValueError(f"model: expected logits of shape (B, num_classes)"
                         f"{f' with B = {batch}' if batch is not None else ''}, got {tuple(scores.shape)}")
    return scores


@contextmanager
def gradients_on(images: torch.Tensor) -> Iterator[torch.Tensor]:
    """Gradient recording on, even inside ``torch.no_grad()`` or ``torch.inference_mode()``; yields
    ``images`` (an ordinary copy when they were created in inference mode, which autograd refuses)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield images.clone() if images.is_inference() else images


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


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def resolve_classes(classes: ClassSpec, logits: torch.Tensor) -> torch.Tensor:
    """Target classes as a ``(B, T)`` long tensor.

    ``None`` = every output class (T = K); an int; a sequence of ints (the same for every image);
    ``"pred"`` = each image's argmax (T = 1; for one-output models, the single output);
    a ``(B,)`` or ``(B, T)`` integer tensor (or numpy array) = per-image targets.
    Float and bool targets are refused (``0.7`` would silently become class 0), as are negative ones.
    """
    batch, num_classes = logits.shape
    if isinstance(classes, np.ndarray):
        classes = torch.as_tensor(classes)
    if classes is None:
        idx = torch.arange(num_classes, device=logits.device).expand(batch, -1)
    elif isinstance(classes, str):
        if classes != "pred":
            raise ValueError(f"classes: the only string accepted is 'pred', got {classes!r}")
        idx = logits.argmax(1, keepdim=True)
    elif isinstance(classes, torch.Tensor):
        if classes.dtype == torch.bool or classes.is_floating_point() or classes.is_complex():
            raise TypeError(f"classes: expected an integer tensor of class indices, got dtype {classes.dtype} "
                            "(non-integer targets would be truncated, e.g. 0.7 -> class 0); convert whole "
                            "numbers with .long()")
        idx = classes.to(logits.device).long()
        idx = idx[:, None] if idx.ndim == 1 else idx
        if idx.ndim != 2 or idx.shape[0] != batch:
            raise ValueError(f"classes: a tensor of targets must be (B,) or (B, T) with B = {batch}, "
                             f"got shape {tuple(classes.shape)}")
    elif _is_int(classes):
        idx = torch.full((batch, 1), int(classes), device=logits.device, dtype=torch.long)
    elif isinstance(classes, Sequence) and len(classes) > 0 and all(_is_int(c) for c in classes):
        idx = torch.tensor([int(c) for c in classes], device=logits.device).expand(batch, -1)
    else:
        raise TypeError(f"classes: expected None, an int, a non-empty sequence of ints, 'pred' or an "
                        f"integer tensor, got {classes!r}")
    if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)].unique().tolist()
        raise ValueError(f"classes: {bad} out of range for a model with {num_classes} output(s) "
                         f"(valid: 0..{num_classes - 1})")
    if idx.is_inference() and not torch.is_inference_mode_enabled():
        idx = idx.clone()            # targets made under inference_mode, used where autograd records
    return idx


@contextmanager
def eval_mode(model: nn.Module | Callable) -> Iterator[nn.Module | Callable]:
    """Temporarily switch to eval mode (BatchNorm in train mode would mix images of the batch).

    On exit every submodule gets back its own ``training`` flag (a BatchNorm frozen with ``.eval()``
    inside a model in training mode stays frozen), not the top-level module's."""
    if not isinstance(model, nn.Module):  # a plain callable (model-agnostic methods)
        yield model
        return
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


@contextmanager
def frozen_parameters(model: nn.Module | Callable) -> Iterator[nn.Module | Callable]:
    """Temporarily set ``requires_grad=False`` on every parameter of ``model``.

    On exit each parameter gets back its own flag (one the user had frozen stays frozen), also when
    the body raises. A plain callable is yielded unchanged (nothing to freeze)."""
    if not isinstance(model, nn.Module):
        yield model
        return
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def explaining(model: nn.Module | Callable) -> Iterator[nn.Module | Callable]:
    """What every explanation runs under: :func:`eval_mode` and :func:`frozen_parameters`, both
    restored exactly on exit. Gradients w.r.t. inputs or captured activations still flow."""
    with eval_mode(model), frozen_parameters(model):
        yield model


@contextmanager
def capture(model: nn.Module, layers: Sequence[tuple[str, nn.Module]]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that store each layer's output (graph kept) in the yielded dict.

    The stored tensor is the layer's own output; the rest of the network receives a copy (the hook
    returns ``output.clone()``), so an in-place operation after the layer (``out += identity``,
    ``ReLU(inplace=True)``) cannot change what is explained, and gradients w.r.t. the stored tensor
    flow through the copy. An output that does not require grad (frozen model, no-grad input) is
    re-rooted as a leaf that does, so gradients w.r.t. it are always available.
    """
    store: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                raise ValueError(f"layer: {name!r} must output a (B, K, h, w) tensor, got "
                                 f"{type(output).__name__ if not isinstance(output, torch.Tensor) else tuple(output.shape)}")
            if not output.requires_grad:
                output = output.detach().requires_grad_(True)
            store[name] = output
            return output.clone()
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
    with gradients_on(images) as x, capture(model, layers) as store:
        logits = check_scores(model(x), images.shape[0])
    missing = [name for name, _ in layers if name not in store]
    if missing:
        raise ValueError(f"layer: {missing} did not run during the forward pass")
    return logits, store
