"""MDNet pieces: shapes, the AAS module and its gradients, per-block weights and the decoupled output (and
what breaks it), attention, decoding, the joint objective, log-likelihood retrieval, bad input."""
import pickle

import numpy as np
import pytest
import torch

from medxai_lib.data import HistologyPhantom
from medxai_lib.evaluate.studies.mdnet import attribute_accuracy, relevant_images, retrieval_scores, symptom_query
from medxai_lib.models.mdnet import AASModule, MDNet, MDNetImage, mdnet_loss, scale_grad
from medxai_lib.train.mdnet import VARIANTS, MDNetConfig, fit_image_model, fit_mdnet, fit_variants, report_log_likelihood


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
    assert torch.allclose(model.diagnose(images), class_logits)


def test_aas_module_shapes_and_its_weights_are_the_class_maps():
    torch.manual_seed(0)
    m = AASModule(feature_dim=6, num_classes=3, hidden=5)
    feats = torch.randn(2, 6, 4, 4)
    logits, alpha = m(feats)
    assert logits.shape == (2, 3) and alpha.shape == (2, 16)
    assert torch.allclose(alpha.sum(1), torch.ones(2)) and (alpha > 0).all()
    pooled = (alpha[:, None] * feats.flatten(2)).sum(-1)                  # attention-weighted pooling by hand
    assert torch.allclose(logits, pooled @ m.classifier.weight.T + m.classifier.bias, atol=1e-6)


def test_class_map_uses_the_aas_weights_and_without_aas_the_image_classifier(setup):
    _, vocab, model, images, _ = setup
    feats = model.image.features(images)
    classes = torch.tensor([0, 1, 2, 3])
    expected = torch.einsum("bd,bdhw->bhw", model.aas.classifier.weight[classes], feats)
    assert torch.allclose(model.class_map(feats, classes), expected)
    plain = MDNet(len(vocab), aas=False)
    assert plain.aas is None and plain.class_weights is plain.image.classifier.weight


def test_gradient_flows_into_theta_m_and_theta_d_from_the_label(setup):
    _, vocab, _, images, tokens = setup
    torch.manual_seed(1)
    model = MDNet(len(vocab)).train()
    class_logits, word_logits, _, _ = model(images, tokens)
    loss, parts = mdnet_loss(class_logits, torch.tensor([0, 1, 2, 3]), None, None, beta=0.5)
    loss.backward()
    assert set(parts) == {"image"}
    for name, module in (("theta_M score", model.aas.score), ("theta_M classifier", model.aas.classifier),
                         ("theta_D", model.image.blocks[0])):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, name
    assert all(p.grad is None for p in model.language.parameters())          # L_M alone does not train L
    assert all(p.grad is None for p in model.image.classifier.parameters())   # D's own head is not M's


@pytest.mark.parametrize("connection", ["ensemble", "additive"])
def test_per_block_weights_sum_to_the_full_logit(connection):
    torch.manual_seed(0)
    net = MDNetImage(4, connection=connection).eval()
    x = torch.randn(3, 3, 32, 32)
    contributions = net.block_contributions(x)
    assert contributions.shape == (3, len(net.block_names), 4)
    assert torch.allclose(contributions.sum(1) + net.classifier.bias, net(x), atol=1e-5)
    maps = net.block_maps(x, torch.tensor([0, 2, 3]))
    assert torch.allclose(maps.mean((2, 3)), contributions[torch.arange(3), :, torch.tensor([0, 2, 3])], atol=1e-5)
    weights = net.block_weights()
    if connection == "ensemble":        # disjoint column groups of one classifier, one per block
        assert torch.equal(torch.cat(weights, 1), net.classifier.weight)
        assert [w.shape[1] for w in weights] == net.groups
    else:                               # one shared weight vector for every block
        assert all(w is net.classifier.weight for w in weights)
    broken = net.block_contributions(x, merge_relu=True).sum(1) + net.classifier.bias
    assert (broken - net(x, merge_relu=True)).abs().max() > 1e-3           # a ReLU after each merge breaks it


def test_bad_connection():
    with pytest.raises(ValueError, match="connection"):
        MDNetImage(connection="dense")


def test_beam_one_is_greedy_and_beam_is_at_least_as_likely(setup):
    _, vocab, model, images, _ = setup
    bos, eos = vocab.stoi["<bos>"], vocab.stoi["<eos>"]
    greedy, att = model.generate(images, bos, eos, max_len=12)
    beam1, _ = model.generate(images, bos, eos, max_len=12, beam=1)
    feats = model.image.features(images)
    cam = model.class_map(feats, model.classify(feats).argmax(1))
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
    total, parts = mdnet_loss(logits, torch.tensor([0, 3]), words, tokens, beta=0.3)
    assert total.item() == pytest.approx(0.7 * parts["image"] + parts["language"], rel=1e-5)
    only, _ = mdnet_loss(logits, torch.tensor([0, 3]), None, None, beta=0.3)
    assert only.item() == pytest.approx(parts["image"], rel=1e-6)


def test_log_likelihood_of_a_sentence_after_a_prefix(setup):
    _, vocab, model, images, _ = setup
    report = "there is no cell crowding ."
    full = report_log_likelihood(model, images, vocab, report)
    with torch.no_grad():                         # by hand: teacher-forced log-probabilities, <eos> included
        ids = torch.tensor(vocab.encode(report)).expand(4, -1)
        logp = torch.log_softmax(model(images, ids)[1], -1).gather(2, ids[:, 1:, None])[..., 0].sum(1)
    assert np.allclose(full, logp.numpy(), atol=1e-5)
    prefixes = ["nuclei are uniform in size and shape ."] * 4
    after = report_log_likelihood(model, images, vocab, "there is no cell crowding", prefixes=prefixes)
    with torch.no_grad():
        ids = torch.tensor(vocab.encode(prefixes[0] + " there is no cell crowding")[:-1]).expand(4, -1)
        logp = torch.log_softmax(model(images, ids)[1], -1).gather(2, ids[:, 1:, None])[..., 0]
    assert np.allclose(after, logp[:, -5:].sum(1).numpy(), atol=1e-5)           # only the 5 query words
    assert (after < 0).all()


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
    with pytest.raises(ValueError, match="prefixes"):
        report_log_likelihood(model, images, vocab, "polarity is preserved", prefixes=["."])
    with pytest.raises(ValueError, match="beta"):
        MDNet(10, beta=2.0)
    with pytest.raises(ValueError, match="no attribute"):
        symptom_query("a lovely day")


def test_training_lowers_the_losses_caches_and_shares_batches():
    ds = HistologyPhantom(16, size=32, seed=1)
    vocab = ds.vocabulary()
    config = MDNetConfig(epochs=3, batch_size=8)
    model, history, cached = fit_mdnet(ds, vocab, config, device="cpu", cache_key={"t": 1})
    assert not cached and history[-1]["language"] < history[0]["language"]
    again, history2, cached2 = fit_mdnet(ds, vocab, config, device="cpu", cache_key={"t": 1})
    assert cached2 and history2 == history
    image_only, h3, _ = fit_mdnet(ds, vocab, MDNetConfig(epochs=3, batch_size=8, language=False), device="cpu")
    assert set(h3[-1]) == {"epoch", "image"}
    additive, h4, _ = fit_image_model(ds, "additive", MDNetConfig(epochs=2, batch_size=8), device="cpu")
    assert additive.connection == "additive" and len(h4) == 2


def test_report_evaluation_helpers():
    reports = ["there is severe pleomorphism of the nuclei . cells are not crowded . conclusion normal .",
               "nuclei are uniform in size and shape . there is severe cell crowding ."]
    grades = np.array([[2, 0, 0, 0, 0], [0, 1, 0, 0, 0]])
    acc = attribute_accuracy(reports, grades)
    assert acc["pleomorphism"] == 1.0 and acc["crowding"] == 0.5 and acc["polarity"] == 0.0
    assert relevant_images("severe nuclear pleomorphism", grades).tolist() == [True, False]
    out = retrieval_scores(np.array([0.9, 0.1, 0.5]), np.array([True, False, True]), k=2)
    assert out["P@2"] == 1.0 and out["AP"] == pytest.approx(1.0)


def test_fit_variants_in_worker_processes_gives_the_same_weights(tmp_path, monkeypatch):
    ds = HistologyPhantom(16, size=32, seed=2)
    vocab, config = ds.vocabulary(), MDNetConfig(epochs=1, batch_size=8)
    threads, weights = torch.get_num_threads(), {}
    torch.set_num_threads(1)
    for workers in (1, 2):
        monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / f"cache{workers}"))
        ds = HistologyPhantom(16, size=32, seed=2)     # nothing rendered yet
        models, from_cache = fit_variants(ds, vocab, [0], config, device="cpu", cache_key={"t": 2}, workers=workers)
        assert from_cache == 0 and [len(models[v]) for v in VARIANTS] == [1, 1, 1, 1]
        sent = pickle.loads(pickle.dumps(ds))      # what a worker process receives: the items already rendered
        assert len(sent.__dict__.get("_cache", {})) == len(ds) and torch.equal(sent[3]["image"], ds[3]["image"])
        assert len(list((tmp_path / f"cache{workers}" / "checkpoints").iterdir())) == 4
        weights[workers] = [t for v in VARIANTS for t in models[v][0].state_dict().values()]
    torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(weights[1], weights[2]))
    again, from_cache = fit_variants(ds, vocab, [0], config, device="cpu", cache_key={"t": 2}, workers=2)
    assert from_cache == 4
    with pytest.raises(ValueError, match="workers"):
        fit_variants(ds, vocab, [0], config, device="cpu", workers=0)


def test_fit_variants_trains_the_attribute_probes_among_its_jobs(tmp_path, monkeypatch):
    from medxai_lib.train.mdnet import fit_attribute_probe
    vocab, config = HistologyPhantom(16, size=32, seed=2).vocabulary(), MDNetConfig(epochs=1, batch_size=8)
    threads, probes = torch.get_num_threads(), {}
    torch.set_num_threads(1)
    for workers in (1, 2):
        monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / f"cache{workers}"))
        ds = HistologyPhantom(16, size=32, seed=2)
        fit_variants(ds, vocab, [0], config, device="cpu", cache_key={"t": 3}, workers=workers, probe=True)
        saved = len(list((tmp_path / f"cache{workers}" / "checkpoints").iterdir()))
        assert saved == (5 if workers == 2 else 4)       # one process trains the probe when it is asked for it
        probe, _, cached = fit_attribute_probe(ds, config, device="cpu", cache_key={"t": 3})
        assert cached == (workers == 2)
        probes[workers] = list(probe.state_dict().values())
    torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(probes[1], probes[2]))
