"""models.inference.fast_forward: conv nets run channels-last on the CPU, give the plain forward's outputs,
and hand the parameters back in the layout they had, also after an exception."""
import pytest
import torch
from torch import nn

from medxai_lib.models import densenet_small
from medxai_lib.models.cnn import SkinCNN
from medxai_lib.models.inference import fast_forward, predict_logits
from medxai_lib.evaluate.metrics.faithfulness import deletion_insertion, deletion_insertion_many
from medxai_lib.explain.perturbation import occlusion


def _layouts(model: nn.Module) -> list[bool]:
    return [p.is_contiguous() for p in model.parameters() if p.ndim == 4]


def _last_conv_input_layouts(model: nn.Module) -> tuple[list[bool], torch.utils.hooks.RemovableHandle]:
    """Records, per forward, whether the last conv's input (many channels: the layouts differ) is channels-last."""
    seen: list[bool] = []
    conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    handle = conv.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last) and not args[0].is_contiguous()))
    return seen, handle


@pytest.mark.parametrize("make, channels", [(lambda: SkinCNN(2, 3, 8), 3),
                                            (lambda: densenet_small(num_classes=3, in_channels=1), 1)])
def test_same_outputs_in_channels_last_and_layout_restored(make, channels):
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(5, channels, 48, 48)
    with torch.no_grad():
        expected = model(x)
        seen, handle = _last_conv_input_layouts(model)
        with fast_forward(model) as run:
            out = run(x)
        handle.remove()
    assert seen == [True], "the forward inside fast_forward did not run channels-last"
    assert out.is_contiguous() and out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-5)
    assert all(_layouts(model)), "parameters were not handed back contiguous"


def test_a_channels_last_model_stays_channels_last_and_layout_restored_after_an_exception():
    model = SkinCNN(2, 3, 8).eval().to(memory_format=torch.channels_last)
    with fast_forward(model) as run:
        run(torch.randn(2, 3, 32, 32))
    assert not any(_layouts(model))
    plain = SkinCNN(2, 3, 8).eval()
    with pytest.raises(KeyError):
        with fast_forward(plain):
            assert not all(_layouts(plain))      # converted inside
            raise KeyError("boom")
    assert all(_layouts(plain))


class _ViewNet(nn.Module):
    """Flattens its feature map with .view, which a channels-last tensor refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        return self.fc(a.view(a.shape[0], -1))


def test_a_model_that_needs_contiguous_activations_falls_back_to_the_usual_layout():
    torch.manual_seed(0)
    model = _ViewNet().eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        expected = model(x)
        with fast_forward(model) as run:
            first, second = run(x), run(x)
    assert torch.allclose(first, expected, atol=1e-6) and torch.allclose(second, expected, atol=1e-6)
    assert all(_layouts(model))


def test_callables_and_linear_models_are_called_as_they_are():
    fn = lambda z: z.sum((1, 2, 3))[:, None]   # noqa: E731
    with fast_forward(fn) as run:
        assert run is fn
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with fast_forward(mlp) as run:
        assert run is mlp


def test_predict_logits_occlusion_and_deletion_equal_the_plain_forward():
    torch.manual_seed(0)
    model = SkinCNN(2, 3, 8).eval()
    x = torch.rand(4, 3, 32, 32)
    data = [{"image": img} for img in x]
    with torch.no_grad():
        plain = model(x)
    assert torch.allclose(predict_logits(model, data, batch_size=3), plain, atol=1e-5)
    # occlusion by hand: mean drop over covering windows, with plain forwards
    attributed = occlusion(model, x[:1], classes=[1], window=16, stride=16)
    with torch.no_grad():
        quarter = x[:1].clone()
        quarter[..., :16, :16] = 0
        drop = model(x[:1])[0, 1] - model(quarter)[0, 1]
    assert torch.allclose(attributed[0, 0, 0, 0, 0], drop, atol=1e-5)
    maps = torch.rand(4, 32, 32)
    curves, _ = deletion_insertion(model, x, maps, torch.ones(4, dtype=torch.long), n_steps=4, mode="deletion")
    many = deletion_insertion_many(model, x, {"m": maps}, torch.ones(4, dtype=torch.long), n_steps=4)
    assert torch.allclose(curves, many["m"][0], atol=1e-5)
    assert torch.allclose(curves[:, 0], torch.softmax(plain, 1)[:, 1], atol=1e-5)
    assert all(_layouts(model))


def test_further_inputs_go_channels_last_with_the_images():
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.seen: list[bool] = []

        def forward(self, x, mask, maps):
            self.seen += [t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() for t in (mask, *maps)]
            return self.conv(x) * mask + sum(m.mean() for m in maps)

    model = TwoInputs().eval()
    x, mask, maps = torch.randn(2, 3, 8, 8), torch.rand(2, 4, 8, 8), [torch.randn(2, 5, 4, 4)]
    with torch.no_grad():
        expected = model(x, mask, maps)
        model.seen.clear()
        with fast_forward(model) as run:
            out = run(x, mask, maps)
    assert model.seen == [True, True] and torch.allclose(out, expected, atol=1e-6) and out.is_contiguous()
    assert all(_layouts(model))
