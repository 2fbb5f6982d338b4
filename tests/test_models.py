import pytest
import torch
from torchvision.models import densenet169 as tv_densenet169

from medxai_lib.models import (PretrainedWeightsUnavailable, densenet169, densenet_block_layers,
                               densenet_small)
from medxai_lib.models.densenet import DENSENET169_WEIGHTS_FILE


def test_densenet169_gives_torchvision_logits_for_the_same_weights():
    reference = tv_densenet169(weights=None).eval()
    ours = densenet169(num_classes=1000).eval()
    ours.load_state_dict(reference.state_dict())  # same keys: relu5 has no parameters
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-5)
        feats = ours.features(x)
    assert feats.min() >= 0  # features end with the explicit ReLU the average pool sees
    assert isinstance(ours.features.relu5, torch.nn.ReLU)
    assert not any(m.inplace for m in ours.modules() if isinstance(m, torch.nn.ReLU))


def test_densenet_small_shapes():
    model = densenet_small(num_classes=3, in_channels=1)
    x = torch.randn(2, 1, 96, 96)
    assert model(x).shape == (2, 3)
    assert model.features(x).shape[-2:] == (6, 6)
    assert densenet_block_layers(model) == {"block1": "features.transition1", "block2": "features.transition2",
                                            "block3": "features.transition3", "block4": "features"}


def test_pretrained_offline_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailable, match=DENSENET169_WEIGHTS_FILE):
        densenet169(pretrained=True)


def test_pretrained_loads_from_the_hub_cache_and_adapts_to_grey(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = tv_densenet169(weights=None)
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(source.state_dict(), hub / DENSENET169_WEIGHTS_FILE)
    rgb = densenet169(num_classes=1, pretrained=True).eval()
    grey = densenet169(num_classes=1, in_channels=1, pretrained=True).eval()
    assert torch.equal(rgb.features.conv0.weight, source.features.conv0.weight)
    grey.classifier.load_state_dict(rgb.classifier.state_dict())
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(grey(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4)


@pytest.mark.parametrize("kwargs, name", [({"num_classes": 0}, "num_classes"), ({"in_channels": 2}, "in_channels")])
def test_bad_model_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        densenet_small(**kwargs)
    with pytest.raises(ValueError, match="block_config"):
        densenet_small(block_config=(2, 2, 2))


def test_torchvision_loads_only_when_a_densenet_is_asked_for():
    """Importing the library for a notebook that trains no DenseNet (01, 02, 05, 06) must not import torchvision
    (about 1.2-1.8 s per notebook); the DenseNet names still resolve, and an unknown name is an AttributeError."""
    import subprocess
    import sys
    code = ("import sys; import medxai_lib.train.recipes, medxai_lib.evaluate, medxai_lib.explain.activation_network, "
            "medxai_lib.evaluate.studies.inoculation; print('torchvision' in sys.modules); "
            "from medxai_lib.models import densenet_small, build_model; print('torchvision' in sys.modules); "
            "import medxai_lib.models as m; print(m.CamReadyDenseNet.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "CamReadyDenseNet"]
    import medxai_lib.models as models
    with pytest.raises(AttributeError, match="no attribute 'resnet'"):
        models.resnet
