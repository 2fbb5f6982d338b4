"""The Zeiler-Fergus activation network (deconvnet) attached to the DR detector, written out layer by layer.

It shares the detector's weights: each 4x4 convolution is undone by a transposed convolution with the
same kernel, each max-pool by unpooling with the switches recorded in the forward pass, and each
leaky ReLU by a ReLU applied to the backward signal. Starting from a chosen layer's activations it
projects them back to the input, ``(B, 3, S, S)``. :func:`medxai_lib.explain.gradients.deconvnet` gets the
same projection through autograd hooks; a test checks the two agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medxai_lib.explain.capture import explaining
from medxai_lib.models.detector import DetectorTrace, DRDetector, SameConv4

SIGNALS = ("activation", "grade")


def _conv_back(conv: SameConv4, signal: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
    """The transposed 4x4 convolution with the forward kernel (the bias is not undone)."""
    if conv.stride == (1, 1):
        full = F.conv_transpose2d(signal, conv.weight)
        return full[..., 1:1 + input_shape[-2], 1:1 + input_shape[-1]]
    out_pad = [input_shape[-2] - ((signal.shape[-2] - 1) * 2 - 2 + 4), input_shape[-1] - ((signal.shape[-1] - 1) * 2 - 2 + 4)]
    return F.conv_transpose2d(signal, conv.weight, stride=2, padding=1, output_padding=tuple(out_pad))


def unpool(signal: torch.Tensor, switches: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
    """Unpooling with the switches: each pooled value goes back to where its maximum was, ``(B, C, h, w)
    -> input_shape``. Overlapping 3/2 pools can pick one location twice; the values add up (the exact
    transpose of max-pooling; ``F.max_unpool2d`` would keep only one of them)."""
    out = signal.new_zeros(signal.shape[0], signal.shape[1], input_shape[-2] * input_shape[-1])
    out.scatter_add_(2, switches.flatten(2), signal.flatten(2))
    return out.view(signal.shape[0], signal.shape[1], input_shape[-2], input_shape[-1])


class ActivationNetwork:
    """Deconvnet projections of a :class:`DRDetector` layer. The detector is only read, never changed."""

    def __init__(self, detector: DRDetector) -> None:
        if not isinstance(detector, DRDetector):
            raise TypeError(f"detector: expected a DRDetector, got {type(detector).__name__}")
        self.detector = detector

    def project(self, images: torch.Tensor, layer: str = "conv4b", signal: str = "grade") -> torch.Tensor:
        """Project ``layer`` back to pixels. ``(B, 3, S, S)`` signed.

        ``signal="activation"``: the layer's activations themselves (Zeiler & Fergus).
        ``signal="grade"``: each channel weighted by its positive average gradient of the predicted
        grade (a grade-specific projection: channels that lower the grade are dropped).
        """
        return self.project_with_trace(images, layer, signal)[0]

    @torch.no_grad()
    def project_with_trace(self, images: torch.Tensor, layer: str = "conv4b", signal: str = "grade"
                           ) -> tuple[torch.Tensor, DetectorTrace]:
        """:meth:`project` plus the detector's forward trace (activations, switches) of the same pass."""
        names = self.detector.layer_names
        if layer not in names:
            raise ValueError(f"layer: expected one of {names}, got {layer!r}")
        if signal not in SIGNALS:
            raise ValueError(f"signal: expected one of {SIGNALS}, got {signal!r}")
        grade = signal == "grade"                # only the grade weighting needs a gradient (and so a graph)
        with explaining(self.detector):
            with torch.set_grad_enabled(grade):
                score, trace = self.detector.trace(images.detach().requires_grad_(grade))
                start = trace.activations[layer]
                if grade:
                    (grad,) = torch.autograd.grad(score.sum(), start)
                    start = start * grad.mean((2, 3), keepdim=True).clamp(min=0)
            return self._backward(start.detach().clamp(min=0), layer, trace, images.shape), trace

    def _backward(self, signal: torch.Tensor, layer: str, trace: DetectorTrace, image_shape: torch.Size) -> torch.Tensor:
        names = self.detector.layer_names
        for name in reversed(names[:names.index(layer) + 1]):
            if name.startswith("pool"):
                signal = unpool(signal, trace.switches[name], trace.pool_inputs[name])
                continue
            signal = torch.relu(signal)           # the leaky ReLU, undone as a ReLU on the backward signal
            index = names.index(name)
            below = trace.activations[names[index - 1]].shape if index > 0 else image_shape
            signal = _conv_back(self.detector.convs[name], signal, below)
        return signal

    def lesion_map(self, images: torch.Tensor, layer: str = "conv4b", signal: str = "grade") -> torch.Tensor:
        """``|projection|`` summed over colour channels and scaled to max 1 per image: ``(B, S, S)`` in [0, 1]."""
        return as_lesion_map(self.project(images, layer, signal))


def as_lesion_map(projection: torch.Tensor) -> torch.Tensor:
    """``(B, 3, S, S)`` projection -> ``|.|`` summed over colours, scaled to max 1 per image, ``(B, S, S)``."""
    magnitude = projection.abs().sum(1)
    return magnitude / magnitude.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
