"""Grad-CAM for every class on all four DenseNet-169 blocks: medxai vs pytorch-grad-cam vs the limit.

Job: batch 8, 224x224, 7 classes, random init, Grad-CAM of all 7 classes on the 4 block outputs.
* medxai: one `grad_cam` call (one forward, one activation-only backward per class).
* pytorch-grad-cam: one `GradCAM` call per class with the 4 target layers (its API: one target per image).
* limit: a bare forward with hooks + one `torch.autograd.grad` per class w.r.t. the 4 activations,
  the parameters frozen (no weight-gradient graph; the input requires grad so the activations do).
Prints the medians of `--repeats` runs (interleaved) and the ratios. Targets: <=0.35x peer, <=1.15x limit.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from medxai_lib.explain import grad_cam
from medxai_lib.models import densenet169, densenet_block_layers


def limit(model, x, layers, n_classes):
    store = []
    handles = [dict(model.named_modules())[name].register_forward_hook(lambda m, i, o: store.append(o))
               for name in layers]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        logits = model(x.detach().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
    for c in range(n_classes):
        torch.autograd.grad(logits[:, c].sum(), store, retain_graph=c < n_classes - 1)


def peer(model, x, layers, n_classes):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    modules = [dict(model.named_modules())[name] for name in layers]
    with GradCAM(model=model, target_layers=modules) as method:
        for c in range(n_classes):
            method(input_tensor=x, targets=[ClassifierOutputTarget(c)] * len(x))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = densenet169(num_classes=args.classes).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    layers = list(densenet_block_layers(model).values())
    jobs = {"medxai grad_cam": lambda: grad_cam(model, x, layers),
            "pytorch-grad-cam": lambda: peer(model, x, layers, args.classes),
            "limit (fwd + act-only bwd)": lambda: limit(model, x, layers, args.classes)}
    for job in jobs.values():  # warm-up
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"DenseNet-169, batch {args.batch}, {args.size}px, {args.classes} classes, 4 blocks, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print("| job | seconds | ratio to medxai |")
    print("|---|---|---|")
    for name, seconds in med.items():
        print(f"| {name} | {seconds:.2f} | {seconds / med['medxai grad_cam']:.2f} |")
    ours = med["medxai grad_cam"]
    print(f"medxai / pytorch-grad-cam = {ours / med['pytorch-grad-cam']:.2f} (target <= 0.35)")
    print(f"medxai / limit            = {ours / med['limit (fwd + act-only bwd)']:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
