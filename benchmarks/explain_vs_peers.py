"""The explanation toolkit against its peers, ratios measured in one run (see docs/benchmarks.md).

Jobs:
  A. gradient CAM family, multi-class: DenseNet-169, batch 8, 224 px, 7 classes, layer `features`.
     medxai: one call (all classes, one forward); pytorch-grad-cam: one call per class.   target <= 0.5x
  B. Score-CAM / Ablation-CAM: densenet_small, batch 4, 96 px, 3 classes, layer `features`.
     Score-CAM limit: the B*K masked forwards alone, at the same chunk size.            target <= 1.1x limit
  C. occlusion: densenet_small, batch 4, 96 px, 3 classes, window 16, stride 8; captum Occlusion with
     perturbations_per_eval = our chunk (64), one call per class.                         target <= 1.0x
  D. deletion + insertion curves: 16 images, 20 steps, vs the bare forwards of the same images.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from medxai_lib.evaluate import deletion_insertion
from medxai_lib.explain import (ablation_cam, eigen_cam, grad_cam, grad_cam_pp, hires_cam, layer_cam, occlusion,
                                score_cam, xgrad_cam)
from medxai_lib.models import densenet169, densenet_small


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peer_per_class(cls_name: str, model, x, layer: str, n_classes: int) -> Callable[[], None]:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    module = dict(model.named_modules())[layer]

    def run() -> None:
        with getattr(pgc, cls_name)(model=model, target_layers=[module]) as method:
            if hasattr(method, "batch_size"):
                method.batch_size = 64
            for c in range(n_classes):
                method(input_tensor=x, targets=[ClassifierOutputTarget(c)] * len(x))
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-big", action="store_true", help="skip job A (DenseNet-169)")
    args = parser.parse_args()
    import tqdm
    from functools import partialmethod
    tqdm.tqdm.__init__ = partialmethod(tqdm.tqdm.__init__, disable=True)  # silence the peers' bars
    rows = []
    if not args.skip_big:
        torch.manual_seed(0)
        big = densenet169(num_classes=7).eval()
        xb = torch.randn(8, 3, 224, 224)
        for ours, peer in [(grad_cam, "GradCAM"), (grad_cam_pp, "GradCAMPlusPlus"), (xgrad_cam, "XGradCAM"),
                           (hires_cam, "HiResCAM"), (layer_cam, "LayerCAM"), (eigen_cam, "EigenCAM")]:
            t_ours = timed(lambda: ours(big, xb, "features"), args.repeats)
            t_peer = timed(peer_per_class(peer, big, xb, "features", 7), args.repeats)
            rows.append(("A", ours.__name__, f"pytorch-grad-cam {peer} x7", t_ours, t_peer, 0.5))
    torch.manual_seed(0)
    small = densenet_small(num_classes=3).eval()
    xs = torch.randn(4, 1, 96, 96)
    channels = small.features(xs[:1]).shape[1]
    t_score = timed(lambda: score_cam(small, xs, "features", chunk_size=64), args.repeats)
    rows.append(("B", "score_cam", "pytorch-grad-cam ScoreCAM x3", t_score,
                 timed(peer_per_class("ScoreCAM", small, xs, "features", 3), args.repeats), 1.0))
    masked = torch.randn(4 * channels, 1, 96, 96)

    def limit() -> None:
        with torch.no_grad():
            for part in masked.split(64):
                small(part)
    rows.append(("B", "score_cam", f"limit: {4 * channels} masked forwards", t_score, timed(limit, args.repeats), 1.1))
    rows.append(("B", "ablation_cam", "pytorch-grad-cam AblationCAM x3",
                 timed(lambda: ablation_cam(small, xs, "features", chunk_size=64), args.repeats),
                 timed(peer_per_class("AblationCAM", small, xs, "features", 3), args.repeats), 1.0))
    from captum.attr import Occlusion

    def captum_occlusion() -> None:
        for c in range(3):
            Occlusion(small).attribute(xs, target=c, sliding_window_shapes=(1, 16, 16), strides=(1, 8, 8),
                                       baselines=0.0, perturbations_per_eval=64)
    rows.append(("C", "occlusion", "captum Occlusion x3 (64 per eval)",
                 timed(lambda: occlusion(small, xs, window=16, stride=8, chunk_size=64), args.repeats),
                 timed(captum_occlusion, args.repeats), 1.0))
    x16 = torch.randn(16, 1, 96, 96)
    maps = torch.rand(16, 96, 96)
    targets = torch.zeros(16, dtype=torch.long)
    t_curves = timed(lambda: (deletion_insertion(small, x16, maps, targets, "deletion", 20),
                              deletion_insertion(small, x16, maps, targets, "insertion", 20)), args.repeats)
    bare = torch.randn(16 * 21 * 2, 1, 96, 96)

    def forwards() -> None:
        with torch.no_grad():
            for part in bare.split(21):
                small(part)
    rows.append(("D", "deletion+insertion", f"bare forwards of the same {len(bare)} images", t_curves,
                 timed(forwards, args.repeats), None))
    print(f"{torch.get_num_threads()} threads, best of {args.repeats} after a warm-up\n")
    print("| job | medxai | compared with | medxai s | other s | ratio | target |")
    print("|---|---|---|---|---|---|---|")
    for job, name, other, t_ours, t_other, target in rows:
        ratio = t_ours / t_other
        verdict = "-" if target is None else f"<= {target} {'ok' if ratio <= target else 'MISSED'}"
        print(f"| {job} | {name} | {other} | {t_ours:.2f} | {t_other:.2f} | {ratio:.2f} | {verdict} |")


if __name__ == "__main__":
    main()
