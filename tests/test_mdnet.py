"""MDNet pieces: shapes, the decoupled-output identity, attention, decoding, the joint objective, bad input."""
import pytest
import torch

from medxai_lib.data import HistologyPhantom
from medxai_lib.evaluate.reports import attribute_accuracy, relevant_images, retrieval_scores, symptom_query
from medxai_lib.models.mdnet import MDNet, mdnet_loss, scale_grad
from medxai_lib.train.mdnet import MDNetConfig, fit_mdnet, report_log_likelihood


@pytest.fixture(scope="module")
def setup():
    ds = HistologyPhantom(12, size=32, seed=0)
    vocab = ds.vocabulary()
    torch.manual_seed(0)
    model = MDNet(len(vocab)).eval()
    images = torch.stack([ds[i]["image"] for i in range(4)])
    tokens = torch.tensor([vocab.encode(ds.reports[i][0], 40) for i in range(4)])
    return ds, vocab, model, images, tokens


def test_shapes_and_attention_sums_to_one(setup):
    _, vocab, model, images, tokens = setup
    class_logits, word_logits, attention, cam = model(images, tokens)
    assert class_logits.shape == (4, 4) and word_logits.shape == (4, 39, len(vocab))
    assert attention.shape == (4, 39, 16) and cam.shape == (4, 4, 4)
    assert torch.allclose(attention.sum(-1), torch.ones(4, 39), atol=1e-5)


def test_decoupled_output_identity(setup):
    _, _, model, images, _ = setup
    names, contributions = model.image.decoupled_output(images)
    assert names[0] == "stem" and contributions.shape == (4, len(names), 4)
    assert torch.allclose(contributions.sum(1) + model.image.classifier.bias, model.image(images), atol=1e-5)
    assert torch.allclose(sum(p for _, p in model.image.parts(images)), model.image.features(images), atol=1e-5)


def test_beam_one_is_greedy_and_beam_is_at_least_as_likely(setup):
    _, vocab, model, images, _ = setup
    bos, eos = vocab.stoi["<bos>"], vocab.stoi["<eos>"]
    greedy, att = model.generate(images, bos, eos, max_len=12)
    beam1, _ = model.generate(images, bos, eos, max_len=12, beam=1)
    feats = model.image.features(images)
    cam = model.class_map(feats, model.image(images).argmax(1))
    by_beam = [model._beam(feats[i:i + 1], cam[i:i + 1], bos, eos, 12, 1)[0] for i in range(4)]
    assert greedy == beam1 == by_beam
    assert att[0].shape == (len(greedy[0]), 4, 4)
    wide, _ = model.generate(images[:1], bos, eos, max_len=12, beam=3)
    assert isinstance(wide[0], list)


def test_joint_objective_scales_the_image_models_language_gradient():
    x = torch.ones(3, requires_grad=True)
    (scale_grad(x, 0.25) * 2).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 0.5))
    logits = torch.randn(2, 4)
    words = torch.randn(2, 3, 7)
    tokens = torch.tensor([[1, 4, 5, 2], [1, 6, 2, 0]])
    attention = torch.softmax(torch.randn(2, 3, 16), -1)
    cam = torch.randn(2, 4, 4)
    total, parts = mdnet_loss(logits, torch.tensor([0, 3]), words, tokens, attention, cam, beta=0.3, aas_weight=0.5)
    assert total.item() == pytest.approx(0.7 * parts["image"] + parts["language"] + 0.5 * parts["aas"], rel=1e-5)
    sharp = torch.softmax(cam.flatten(1), 1)[:, None].expand(-1, 3, -1)
    _, perfect = mdnet_loss(logits, torch.tensor([0, 3]), words, tokens, sharp, cam, beta=0.3, aas_weight=0.5)
    assert perfect["aas"] == pytest.approx(0.0, abs=1e-6)


def test_bad_input(setup):
    _, vocab, model, images, tokens = setup
    with pytest.raises(ValueError, match="tokens"):
        model(images, tokens[:, :1])                         # empty caption: only <bos>
    with pytest.raises(ValueError, match="ids must lie"):
        model(images, torch.full_like(tokens, len(vocab)))   # unknown token id
    with pytest.raises(ValueError, match="multiple of 8"):
        model(images[..., :30, :30], tokens)                 # image of the wrong size
    with pytest.raises(ValueError, match="images"):
        model(images[:, :1], tokens)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        report_log_likelihood(model, images, vocab, "purple dragons")
    with pytest.raises(ValueError, match="beta"):
        MDNet(10, beta=2.0)
    with pytest.raises(ValueError, match="no attribute"):
        symptom_query("a lovely day")


def test_training_lowers_the_losses_and_caches():
    ds = HistologyPhantom(16, size=32, seed=1)
    vocab = ds.vocabulary()
    config = MDNetConfig(epochs=3, batch_size=8, reports_per_image=1, aas_weight=0.5)
    model, history, cached = fit_mdnet(ds, vocab, config, device="cpu", cache_key={"t": 1})
    assert not cached and history[-1]["language"] < history[0]["language"]
    again, history2, cached2 = fit_mdnet(ds, vocab, config, device="cpu", cache_key={"t": 1})
    assert cached2 and history2 == history


def test_report_evaluation_helpers():
    import numpy as np
    reports = ["there is severe pleomorphism of the nuclei . cells are not crowded . conclusion normal .",
               "nuclei are uniform in size and shape . there is severe cell crowding ."]
    grades = np.array([[2, 0, 0, 0, 0], [0, 1, 0, 0, 0]])
    acc = attribute_accuracy(reports, grades)
    assert acc["pleomorphism"] == 1.0 and acc["crowding"] == 0.5 and acc["polarity"] == 0.0
    assert relevant_images("severe nuclear pleomorphism", grades).tolist() == [True, False]
    out = retrieval_scores(np.array([0.9, 0.1, 0.5]), np.array([True, False, True]), k=2)
    assert out["P@2"] == 1.0 and out["AP"] == pytest.approx(1.0)
