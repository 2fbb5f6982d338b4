"""models.inference.in_chunks: the same values as one call, computed a few images at a time."""
import pytest
import torch

from medxai_lib.models.inference import in_chunks, predict_logits
from medxai_lib.models.mdnet import MDNetImage


def test_chunks_equal_one_call_for_tensors_and_tuples():
    torch.manual_seed(0)
    model = MDNetImage(4, 8).eval()
    x = torch.rand(23, 3, 32, 32)
    with torch.no_grad():
        whole, contributions = model(x), model.block_contributions(x)
    assert torch.allclose(in_chunks(model, x, size=5), whole, atol=1e-5)
    assert torch.allclose(in_chunks(model.block_contributions, x, size=7), contributions, atol=1e-5)
    pair = in_chunks(lambda a, b: (a.sum((1, 2, 3)), b * 2), x, torch.arange(23.0), size=4)
    assert isinstance(pair, tuple) and torch.equal(pair[1], torch.arange(23.0) * 2)
    assert torch.allclose(pair[0], x.sum((1, 2, 3)))
    shared = torch.ones(3)          # an argument without one row per image is passed whole to every chunk
    assert in_chunks(lambda a, s: a[:, 0, 0, :3] + s, x, shared, size=6).shape == (23, 3)


def test_chunks_reject_bad_input():
    with pytest.raises(ValueError, match="size"):
        in_chunks(lambda a: a, torch.ones(3, 1), size=0)
    with pytest.raises(ValueError, match="images"):
        in_chunks(lambda a: a, torch.ones(0, 1))


def test_predict_logits_default_batch_gives_the_one_batch_logits():
    torch.manual_seed(0)
    model = MDNetImage(4, 8).eval()
    data = [{"image": torch.rand(3, 32, 32)} for _ in range(70)]
    with torch.no_grad():
        expected = model(torch.stack([d["image"] for d in data]))
    assert torch.allclose(predict_logits(model, data), expected, atol=1e-5)
