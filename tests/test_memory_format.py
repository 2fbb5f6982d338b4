"""Training in channels-last memory order: same values as contiguous training, the usual layout handed back
(explanations reshape activations), and a clear error for an unknown format."""
import pytest
import torch
from torch.utils.data import Dataset

from medxai_lib.models import build_model
from medxai_lib.runtime import in_memory_format
from medxai_lib.train.fit import TrainConfig, fit
from medxai_lib.train.mdnet import MDNetConfig, fit_image_model
from medxai_lib.train.pathogan import PathoGANConfig


class _Tiny(Dataset):
    def __init__(self, n: int = 24, size: int = 32, channels: int = 1) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, channels, size, size, generator=g)
        self.labels = (self.images.mean((1, 2, 3)) > self.images.mean()).long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i]}


def _trained(memory_format: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model("densenet_small", num_classes=1, in_channels=1)
    return fit(net, _Tiny(), None, TrainConfig(epochs=2, batch_size=8, memory_format=memory_format), device="cpu",
               show_progress=False).model


def test_channels_last_training_gives_the_contiguous_weights_in_the_usual_layout():
    plain, fast = _trained("contiguous"), _trained("channels_last")
    # The two layouts sum in different orders; Adam turns a float-level difference in a near-zero gradient into up to
    # one learning rate (1e-3) per step, so after 6 steps a weight may differ by a few 1e-3 (measured 1.9e-3 with one
    # torch thread, 1.5e-4 with two). A wrong layout (a transposed or permuted kernel) differs by ~0.1-1.
    for (name, a), b in zip(plain.state_dict().items(), fast.state_dict().values()):
        assert b.is_contiguous(), f"{name} left in channels-last order"
        assert torch.allclose(a.float(), b.float(), atol=5e-3, rtol=1e-3), name
    x = torch.rand(3, 1, 32, 32)
    assert torch.allclose(plain(x), fast(x), atol=1e-3)


def test_the_mdnet_image_model_comes_back_contiguous():
    data = _Tiny(16, 32, channels=3)
    data.reports = [["a report"]] * len(data)
    model, _, _ = fit_image_model(data, "ensemble", MDNetConfig(epochs=1, batch_size=8), num_classes=2, device="cpu")
    assert all(p.is_contiguous() for p in model.parameters())


def test_in_memory_format_keeps_values_and_leaves_other_tensors():
    x = torch.rand(2, 3, 5, 5)
    y = in_memory_format(x, "channels_last")
    assert torch.equal(x, y) and not y.is_contiguous() and y.is_contiguous(memory_format=torch.channels_last)
    v = torch.rand(4, 3)
    assert in_memory_format(v, "channels_last") is v


@pytest.mark.parametrize("make", [lambda f: TrainConfig(memory_format=f), lambda f: MDNetConfig(memory_format=f),
                                  lambda f: PathoGANConfig(memory_format=f), lambda f: in_memory_format(torch.rand(1, 1, 2, 2), f)])
def test_an_unknown_memory_format_is_refused_by_name(make):
    with pytest.raises(ValueError, match="memory_format: expected one of"):
        make("nhwc")
