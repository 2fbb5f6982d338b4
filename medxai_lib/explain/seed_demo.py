"""The seed-004 demo's CAM / Grad-CAM code path, reproduced on a CAM-ready DenseNet.

The demo (PengyiZhang/MIADeepSSL, ``00_Interpretability``) runs the DenseNet block by block, appends
each block's output to a list (blocks 1-3 after their transitions, block 4 after ``norm5``), then calls
``F.relu(x, inplace=True)`` on the *same* tensor it stored, pools, classifies, applies a sigmoid, and
only then registers one gradient hook per stored tensor (``sethook()``) inside a loop over classes.
Two side effects decide what its block-4 Grad-CAM is:

* the in-place ReLU overwrites the stored block-4 tensor with its ReLU, and
* a hook registered *after* an in-place op receives the gradient of the new (post-ReLU) value,

so block-4 Grad-CAM is taken on the tensor that is pooled and equals ReLU(CAM) up to the per-image
factor sigma'(z) / (h w). :func:`demo_maps` runs that logic with the ReLU in place (as written) or out
of place, and with the hooks registered after the forward (as written) or at the moment each tensor is
stored. :func:`trace_multiclass` shows the demo's real multi-class defect (``sethook()`` inside the
per-class loop), and :func:`stored_vs_snapshot` measures how far a forward hook's stored tensor drifts
from the layer's output when later code writes into it (torchvision's ResNets: ``out += identity``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.explain.capture import check_images, explaining, resolve_layer

RELU_MODES = ("inplace", "out_of_place")
HOOK_TIMES = ("after_forward", "at_store")
BLOCK_OUTPUTS = ("transition1", "transition2", "transition3", "norm5")


@dataclass
class DemoResult:
    """What the demo's ``forward`` returns, plus the tensors it stored.

    ``scores (B, K)`` post-sigmoid; ``cam (B, K, h, w)`` (the demo's ``get_cam``: classifier weights on
    ReLU(block 4), bias removed); ``grad_cams``: one ``(B, K, h_b, w_b)`` map per block, blocks 1..4;
    ``logits (B, K)``.
    """
    scores: torch.Tensor
    logits: torch.Tensor
    cam: torch.Tensor
    grad_cams: list[torch.Tensor]

    def gap(self) -> float:
        """:func:`relu_cam_gap` of this run's block-4 Grad-CAM."""
        return relu_cam_gap(self.grad_cams[-1], self.logits, self.cam)


def _check_demo_model(model: nn.Module) -> list[tuple[str, nn.Module]]:
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    if not isinstance(features, nn.Sequential) or not isinstance(classifier, nn.Linear):
        raise ValueError("model: expected a CAM-ready DenseNet (medxai_lib.models.densenet_small / densenet169) "
                         "with a `features` Sequential and a linear `classifier`")
    children = list(features.named_children())
    missing = [n for n in BLOCK_OUTPUTS if n not in dict(children)]
    if missing:
        raise ValueError(f"model: not a 4-block DenseNet, `features` lacks {missing}")
    return [(name, module) for name, module in children if name != "relu5"]


def _forward(model: nn.Module, images: torch.Tensor, relu: str, hook_time: str, save: list
             ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The demo's ``forward`` up to the scores; returns ``(scores, logits, stored block outputs)``."""
    stored: list[torch.Tensor] = []
    x = images.clone().requires_grad_(True)          # a graph to hook, with frozen parameters
    for name, module in _check_demo_model(model):
        x = module(x)
        if name in BLOCK_OUTPUTS:
            stored.append(x)
            if hook_time == "at_store":
                x.register_hook(lambda g: save.append(g.mean((-2, -1))))
    out = F.relu(x, inplace=True) if relu == "inplace" else F.relu(x)
    logits = model.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))
    return torch.sigmoid(logits), logits, stored


def demo_maps(model: nn.Module, images: torch.Tensor, relu: str = "inplace", hook_time: str = "after_forward"
              ) -> DemoResult:
    """Run the demo's forward, ``get_cam`` and ``get_gradcam`` (one class at a time, as written).

    Args:
        model: a CAM-ready DenseNet (``features`` with ``transition1-3`` and ``norm5``, linear ``classifier``).
        images: ``(B, C, H, W)``.
        relu: ``"inplace"`` (the demo: ``F.relu(x, inplace=True)`` on the stored block-4 tensor) or
            ``"out_of_place"`` (the stored tensor stays the pre-ReLU ``norm5`` output).
        hook_time: ``"after_forward"`` (the demo: ``sethook()`` after the forward pass) or ``"at_store"``
            (each gradient hook registered when its tensor is stored, i.e. before the in-place ReLU).
    Returns: :class:`DemoResult`; for more than one class the demo's loop fails (see :func:`trace_multiclass`),
    so this function accepts one-output models only.
    """
    check_images(model, images)
    _check_demo_model(model)
    if relu not in RELU_MODES:
        raise ValueError(f"relu: expected one of {RELU_MODES}, got {relu!r}")
    if hook_time not in HOOK_TIMES:
        raise ValueError(f"hook_time: expected one of {HOOK_TIMES}, got {hook_time!r}")
    if model.classifier.out_features != 1:
        raise ValueError(f"model: demo_maps reproduces the demo for one output (MURA); this model has "
                         f"{model.classifier.out_features}. Use trace_multiclass to see what the demo does then.")
    alpha: list[torch.Tensor] = []
    with explaining(model), torch.enable_grad():
        scores, logits, stored = _forward(model, images, relu, hook_time, alpha)
        features = F.relu(stored[-1].detach())                           # the demo's get_cam
        cam = torch.einsum("k,bkhw->bhw", model.classifier.weight[0], features)[:, None]
        if hook_time == "after_forward":                                 # the demo's sethook()
            for tensor in stored:
                tensor.register_hook(lambda g: alpha.append(g.mean((-2, -1))))
        scores.sum(0)[0].backward()
        # gradients arrive block 4 first; the demo pairs alpha[b-1] with dense_features[-b]
        grad_cams = [F.relu((a[..., None, None] * stored[-b].detach()).sum(1, keepdim=True))
                     for b, a in enumerate(alpha, 1)]
    return DemoResult(scores.detach(), logits.detach(), cam.detach(), grad_cams[::-1])


def sigmoid_factor(logits: torch.Tensor) -> torch.Tensor:
    """sigma'(z) = sigma(z)(1 - sigma(z)) per image and class, ``(B, K)``: the demo differentiates the
    post-sigmoid score, so its gradients are the logit's times this factor."""
    s = torch.sigmoid(logits)
    return s * (1 - s)


def relu_cam_gap(block4: torch.Tensor, logits: torch.Tensor, cams: torch.Tensor) -> float:
    """``max_b max |block4 * h w / sigma'(z) - ReLU(CAM)| / max |CAM|`` over images, for block-4 Grad-CAMs of
    the post-sigmoid score ``(B, K, h, w)``, logits ``(B, K)`` and raw CAMs ``(B, K, h, w)``: ~1e-7 when the
    Grad-CAM is taken on the pooled (post-ReLU) tensor, large otherwise."""
    if block4.shape != cams.shape or logits.shape != cams.shape[:2]:
        raise ValueError(f"block4, logits, cams: expected (B, K, h, w), (B, K), (B, K, h, w); got "
                         f"{tuple(block4.shape)}, {tuple(logits.shape)}, {tuple(cams.shape)}")
    h, w = block4.shape[-2:]
    rescaled = block4 * h * w / sigmoid_factor(logits)[:, :, None, None]
    err = (rescaled - cams.relu()).flatten(1).abs().amax(1)
    return (err / cams.flatten(1).abs().amax(1).clamp_min(1e-12)).max().item()


@dataclass(frozen=True)
class ClassTrace:
    """One pass of the demo's per-class loop: how many gradients its hooks collected, which block each
    came from (by shape), which stored tensor the demo multiplies it with, and what happened."""
    target: int
    gradients: int
    pairs: tuple[tuple[str, str], ...]
    outcome: str


def trace_multiclass(model: nn.Module, images: torch.Tensor) -> list[ClassTrace]:
    """Run the demo's ``get_gradcam`` loop as written (``clear_gradient(); sethook(); y.backward()`` for
    each class) on a model with K >= 1 outputs and record what it does. From the second class on the hooks
    of earlier passes fire too, so class c collects 4(c+1) gradients for 4 tensors and the pairing
    ``alpha[b-1] * dense_features[-b]`` multiplies gradients with the wrong blocks: a shape error when
    their channel counts differ (always, in a DenseNet: block 4 has more channels than block 3), a silently
    wrong map in a network whose blocks agree, an IndexError past the 4th pairing.
    Returns one :class:`ClassTrace` per class; ``pairs`` = (block the gradient came from, block it is
    multiplied with) up to the first failure."""
    check_images(model, images)
    _check_demo_model(model)
    alpha: list[tuple[str, torch.Tensor]] = []
    names = [f"block{i}" for i in range(1, 5)]

    def save_gradient(name: str):  # noqa: ANN202 - the demo's save_gradient, tagged with its block
        return lambda g: alpha.append((name, g.mean((-2, -1))))

    traces = []
    with explaining(model), torch.enable_grad():
        scores, _, stored = _forward(model, images, "inplace", "after_forward", [])
        for target, y in enumerate(scores.sum(0)):
            alpha.clear()                                                # clear_gradient()
            for name, tensor in zip(names, stored):                      # sethook(), inside the loop
                tensor.register_hook(save_gradient(name))
            y.backward(retain_graph=True)
            pairs: list[tuple[str, str]] = []
            outcome = "ok"
            for b, (source, a) in enumerate(alpha, 1):
                pairs.append((source, names[-b] if b <= len(stored) else f"dense_features[-{b}]"))
                try:
                    F.relu((a[..., None, None] * stored[-b].detach()).sum(1, keepdim=True))
                except (RuntimeError, IndexError) as err:
                    outcome = f"{type(err).__name__}: {str(err).splitlines()[0].split(' at non-singleton')[0]}"
                    break
            traces.append(ClassTrace(target, len(alpha), tuple(pairs), outcome))
    return traces


def stored_vs_snapshot(model: nn.Module, layer: str | nn.Module, images: torch.Tensor) -> float:
    """How far the tensor a forward hook stores drifts from the layer's output by the end of the forward:
    ``max |stored - snapshot| / max |snapshot|`` (0 when nothing writes into it later; large for a
    BatchNorm followed by ``out += identity`` and an in-place ReLU, as in torchvision's ResNet blocks)."""
    check_images(model, images)
    _, module = resolve_layer(model, layer)
    kept: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: tuple, output: torch.Tensor) -> None:
        kept["stored"], kept["snapshot"] = output, output.detach().clone()

    handle = module.register_forward_hook(hook)
    try:
        with explaining(model), torch.no_grad():
            model(images)
    finally:
        handle.remove()
    if not kept:
        raise ValueError(f"layer: {layer!r} did not run during the forward pass")
    snap = kept["snapshot"]
    return ((kept["stored"] - snap).abs().max() / snap.abs().max().clamp_min(1e-12)).item()
