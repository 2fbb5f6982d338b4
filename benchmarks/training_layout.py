"""Training step time in contiguous vs channels-last memory order, for the models whose training dominates the
cold notebooks (03's shortcut DenseNets, 05's MDNet image models, 06's Patho-GAN generator + discriminator), with
the notebooks' batch sizes, image sizes and thread counts (model and 4-D inputs in the same order). Median of 7 steps after 3 warm-up steps; each format twice, alternating, the faster kept; one run.

Second table, thread scaling: the same kind of step at 1 and at 2 torch threads in the layout each recipe trains
in, t(1 thread) / t(2 threads) (2.0 perfect, 1.0 none). Where a second thread buys little, two one-thread worker
processes (``train.workers.warm_cache``) would train two models in about the time of one."""
import statistics
import time

import torch

from medxai_lib.models import build_model
from medxai_lib.models.cnn import AttentionGatedCNN, SkinCNN
from medxai_lib.models.detector import DRDetector
from medxai_lib.models.lesion_classifier import LesionTypeNet
from medxai_lib.models.mdnet import MDNetImage
from medxai_lib.models.pathogan import UNetGenerator, VesselDiscriminator
from medxai_lib.runtime import in_memory_format


def step_seconds(make, inputs, loss, memory_format: str, threads: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = in_memory_format(make(), memory_format).train()
    inputs = [in_memory_format(x, memory_format) for x in inputs]
    opt = torch.optim.Adam(model.parameters())
    times = []
    for i in range(10):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss(model, *inputs).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def fastest(measure, settings) -> dict:
    """``{setting: seconds}``: each setting measured twice, alternating, the faster kept (a fresh process sometimes
    stalls 10-40x on its first steps)."""
    runs = {setting: [] for setting in settings}
    for _ in range(2):
        for setting in runs:
            runs[setting].append(measure(setting))
    return {setting: min(times) for setting, times in runs.items()}


class _GAN(torch.nn.Module):
    def __init__(self, width: int = 24) -> None:
        super().__init__()
        self.g, self.d = UNetGenerator((16, 32), width), VesselDiscriminator(width)

    def forward(self, v, fov, z, m1, m2):
        fake = self.g(v, fov, z, [m1, m2])
        return self.d(fake, v).mean() + fake.mean()


B, S = 6, 96
GAN_INPUTS = (torch.rand(B, 1, S, S), torch.ones(B, 1, S, S), torch.randn(B, 32), torch.randn(B, 16, S // 2, S // 2),
              torch.randn(B, 32, S // 4, S // 4))
gan_loss = lambda m, *x: m(*x)  # noqa: E731
mean = lambda m, x: m(x).float().mean()  # noqa: E731
CASES = {   # name: (model factory, inputs, loss, threads the notebook trains with)
    "03 shortcut densenet_small, 64 px, batch 32, 2 threads": (
        lambda: build_model("densenet_small", num_classes=1, in_channels=1), (torch.rand(32, 1, 64, 64),), mean, 2),
    "05 MDNet image model (ensemble), 64 px, batch 16, 1 thread": (
        lambda: MDNetImage(4, connection="ensemble"), (torch.rand(16, 3, 64, 64),), mean, 1),
    "05 MDNet image model (additive), 64 px, batch 16, 1 thread": (
        lambda: MDNetImage(4, connection="additive"), (torch.rand(16, 3, 64, 64),), mean, 1),
    "06 Patho-GAN generator + discriminator, 96 px, batch 6, 2 threads": (_GAN, GAN_INPUTS, gan_loss, 2),
}
THREAD_CASES = {   # name: (model factory, inputs, loss, memory layout the recipe trains in)
    "01/02 SkinCNN width 16, 96 px, batch 32": (lambda: SkinCNN(2, 3, 16), (torch.rand(32, 3, 96, 96),), mean, "contiguous"),
    "01 attention-gated CNN width 16, 96 px, batch 32": (lambda: AttentionGatedCNN(2, 3, 16), (torch.rand(32, 3, 96, 96),), mean,
                                                         "contiguous"),
    "03 densenet_small, 96 px, batch 32": (lambda: build_model("densenet_small", num_classes=1, in_channels=1),
                                           (torch.rand(32, 1, 96, 96),), mean, "contiguous"),
    "06 o_O detector width 16, 96 px, batch 32": (lambda: DRDetector(width=16), (torch.rand(32, 3, 96, 96),), mean, "contiguous"),
    "06 independent bn_cnn width 16, 96 px, batch 32": (lambda: SkinCNN(1, 3, 16), (torch.rand(32, 3, 96, 96),), mean,
                                                        "channels_last"),
    "06 lesion-type classifier, 16-px crops, batch 64": (lambda: LesionTypeNet(16, 24), (torch.rand(64, 3, 16, 16),), mean,
                                                         "contiguous"),
    "06 Patho-GAN generator + discriminator width 16, 96 px, batch 6": (lambda: _GAN(16), GAN_INPUTS, gan_loss, "channels_last"),
}
print(f"torch {torch.__version__}")
print(f"{'model':68s} {'contiguous s':>13s} {'channels_last s':>16s} {'speed-up':>9s}")
for name, (make, inputs, loss, threads) in CASES.items():
    t = fastest(lambda fmt: step_seconds(make, inputs, loss, fmt, threads), ("contiguous", "channels_last"))
    print(f"{name:68s} {t['contiguous']:13.4f} {t['channels_last']:16.4f} {t['contiguous'] / t['channels_last']:8.2f}x")
print(f"\n{'thread scaling':68s} {'1 thread s':>13s} {'2 threads s':>16s} {'t1 / t2':>9s}")
for name, (make, inputs, loss, fmt) in THREAD_CASES.items():
    t = fastest(lambda threads: step_seconds(make, inputs, loss, fmt, threads), (1, 2))
    print(f"{name:68s} {t[1]:13.4f} {t[2]:16.4f} {t[1] / t[2]:8.2f}x")
