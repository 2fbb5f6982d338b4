import pytest
import torch

from medxai_lib.data import RadiographPhantom
from medxai_lib.models import densenet_small
from medxai_lib.runtime import seed_everything
from medxai_lib.train import TrainConfig, fit, predict_logits, probabilities
from medxai_lib.train.fit import checkpoint_path


@pytest.fixture(scope="module")
def tiny():
    return RadiographPhantom(24, size=48, seed=0, abnormalities=("hardware",)), RadiographPhantom(8, size=48, seed=1)


def test_fit_learns_and_caches_by_config(tiny):
    train, val = tiny
    config = TrainConfig(epochs=3, lr=3e-3, batch_size=16)
    seed_everything(0)
    first = fit(densenet_small(), train, val, config, device="cpu", cache_key={"data": "tiny"})
    assert not first.from_cache and first.checkpoint.exists()
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    assert {"val_loss", "val_accuracy", "val_auroc"} <= set(first.history[-1])
    seed_everything(0)
    again = fit(densenet_small(), train, val, config, device="cpu", cache_key={"data": "tiny"})
    assert again.from_cache and again.history == first.history and again.checkpoint == first.checkpoint
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    # a different initialisation or config is a different checkpoint
    seed_everything(1)
    other_init = fit(densenet_small(), train, None, TrainConfig(epochs=0), device="cpu", cache_key={"data": "tiny"})
    seed_everything(0)
    other_cfg = fit(densenet_small(), train, None, TrainConfig(epochs=0), device="cpu", cache_key={"data": "tiny"})
    assert len({first.checkpoint, other_init.checkpoint, other_cfg.checkpoint}) == 3


def test_training_is_deterministic(tiny):
    train, _ = tiny
    runs = []
    for _ in range(2):
        seed_everything(0)
        runs.append(fit(densenet_small(), train, None, TrainConfig(epochs=1, batch_size=16), device="cpu").model)
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        assert torch.equal(a, b)


def test_validating_at_the_last_epoch_only_trains_the_same_weights(tiny):
    train, val = tiny
    runs = {}
    dropout = lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),  # noqa: E731
                                          torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))
    for when in ("epoch", "last"):      # dropout draws from the global RNG, as a validation's DataLoader does
        seed_everything(0)
        runs[when] = fit(dropout(), train, val, TrainConfig(epochs=3, batch_size=16, validate=when), device="cpu")
    for a, b in zip(runs["epoch"].model.state_dict().values(), runs["last"].model.state_dict().values()):
        assert torch.equal(a, b)
    assert "val_loss" in runs["epoch"].history[0] and "val_loss" not in runs["last"].history[0]
    assert runs["last"].history[-1] == runs["epoch"].history[-1]
    model = densenet_small()            # one architecture and init: only the config differs
    assert checkpoint_path(model, TrainConfig(validate="last"), {"d": 1}) != checkpoint_path(model, TrainConfig(), {"d": 1})
    with pytest.raises(ValueError, match="validate"):
        TrainConfig(validate="never")


def test_predict_and_probabilities(tiny):
    train, _ = tiny
    model = densenet_small(num_classes=1)
    logits = predict_logits(model, train, batch_size=7, device="cpu")
    assert logits.shape == (len(train), 1)
    assert probabilities(logits).shape == (len(train),)
    assert probabilities(torch.zeros(3, 4)).sum(1).round().tolist() == [1, 1, 1]


def test_bad_config_and_data():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=-1)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="train_data"):
        fit(densenet_small(), [], None)
