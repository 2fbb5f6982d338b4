"""Forward-only time per image of the conv nets whose inference dominates the explanation and evaluation cells
(deletion/insertion, RISE, occlusion, unit ablation, predictions): the usual layout at the old batch of 32 vs
``models.inference.fast_forward`` (channels-last, ``INFERENCE_BATCH`` images at a time). 256 images, eval mode, no
gradients, the machine's default thread count; each setting three times, alternating, the fastest kept; one run.
Also checks that the two give the same outputs (max |difference| printed)."""
import time

import torch

from medxai_lib.models import densenet_small
from medxai_lib.models.cnn import SkinCNN
from medxai_lib.models.inference import INFERENCE_BATCH, fast_forward


def seconds_per_image(run, images: torch.Tensor, batch: int) -> float:
    start = time.perf_counter()
    for part in images.split(batch):
        run(part)
    return (time.perf_counter() - start) / len(images)


def main() -> None:
    torch.manual_seed(0)
    cases = {"densenet_small (03/04), 96 px, 1 channel": (densenet_small(num_classes=1, in_channels=1), 1),
             "SkinCNN width 16 (01/02/04), 96 px": (SkinCNN(2, 3, 16), 3)}
    print(f"{'model':44s} {'contiguous, 32/batch':>22s} {f'fast_forward, {INFERENCE_BATCH}/batch':>24s} {'speed-up':>9s} {'max |diff|':>11s}")
    for name, (model, channels) in cases.items():
        model.eval()
        images = torch.randn(256, channels, 96, 96)
        with torch.no_grad():
            plain_times, fast_times = [], []
            for _ in range(3):
                plain_times.append(seconds_per_image(model, images, 32))
                with fast_forward(model) as run:
                    fast_times.append(seconds_per_image(run, images, INFERENCE_BATCH))
            with fast_forward(model) as run:
                diff = (torch.cat([run(p) for p in images.split(INFERENCE_BATCH)]) - model(images)).abs().max().item()
        plain, fast = min(plain_times), min(fast_times)
        print(f"{name:44s} {plain * 1e3:19.2f} ms {fast * 1e3:21.2f} ms {plain / fast:8.2f}x {diff:11.1e}")


if __name__ == "__main__":
    main()
