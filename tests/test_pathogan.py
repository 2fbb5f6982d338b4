"""Notebook 06's pieces: the o_O-style detector, the activation network, descriptors and their bank, the
Patho-GAN networks and losses, with hand computations and an autograd cross-check."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import medxai_lib.models.detector as detector_module
from medxai_lib.data import FundusPhantom
from medxai_lib.evaluate import grade_kappa
from medxai_lib.explain.activation_network import ActivationNetwork, _conv_back, unpool
from medxai_lib.explain.descriptors import (Descriptor, DescriptorBank, extract_descriptors, gram, layer_box,
                                            lesion_boxes, threshold_map)
from medxai_lib.models.detector import DRDetector, SameConv4, grades_from_scores
from medxai_lib.models.pathogan import RandomFeatureNet, UNetGenerator, VesselDiscriminator, anatomy_map
from medxai_lib.train import TrainConfig
from medxai_lib.train.pathogan import (PathoGANConfig, adversarial_loss, box_mask, descriptor_maps, detail_loss,
                                       feature_scale, fit_pathogan, matched_placements, pathological_loss, random_placements, synthesize,
                                       total_variation)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return DRDetector(width=4, dense=16).eval()


@pytest.fixture(scope="module")
def fundus():
    return FundusPhantom(4, size=64, seed=5, grade_probs=(0, 0, 0.5, 0.5, 0))


def test_detector_shapes_and_grade_thresholds(detector):
    score, trace = detector.trace(torch.randn(2, 3, 64, 64))
    assert score.shape == (2, 1)
    assert trace.activations["conv1b"].shape == (2, 4, 32, 32)        # stride-2 first conv halves
    assert trace.activations["pool1"].shape == (2, 4, 15, 15)         # 3/2 max-pool
    assert set(trace.switches) == {"pool1", "pool2", "pool3"}
    assert grades_from_scores(np.array([-1, 0.49, 0.5, 1.7, 2.6, 3.49, 3.5, 9])).tolist() == [0, 0, 1, 2, 3, 3, 4, 4]
    with pytest.raises(ValueError, match="images"):
        detector(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 32"):
        detector(torch.randn(1, 3, 16, 16))
    none, early = detector.trace(torch.randn(1, 3, 64, 64), until="conv1b")
    assert none is None and list(early.activations) == ["conv1a", "conv1b"]
    with pytest.raises(ValueError, match="until"):
        detector.trace(torch.randn(1, 3, 64, 64), until="fc")


def test_grade_kappa_matches_sklearn_and_checks_grades():
    from sklearn.metrics import cohen_kappa_score
    grades = np.array([0, 1, 2, 3, 4, 2, 1, 0])
    scores = np.array([0.2, 1.4, 2.6, 2.4, 3.9, 1.6, 0.4, 0.1])
    expected = cohen_kappa_score(grades, [0, 1, 3, 2, 4, 2, 0, 0], weights="quadratic")
    assert grade_kappa(scores, grades) == pytest.approx(expected)
    assert grade_kappa(grades.astype(float), grades) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="grades"):
        grade_kappa(scores, grades + 3)


def test_regression_objective_needs_one_output():
    assert TrainConfig(objective="regression").objective == "regression"
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="ordinal")


def test_transposed_conv_projects_an_impulse_onto_the_kernel():
    conv = SameConv4(1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(16.0).view(1, 1, 4, 4))
    signal = torch.zeros(1, 1, 6, 6)
    signal[0, 0, 2, 2] = 1.0
    back = _conv_back(conv, signal, torch.Size([1, 1, 6, 6]))
    expected = torch.zeros(6, 6)
    expected[1:5, 1:5] = torch.arange(16.0).view(4, 4)   # output (2, 2) reads input rows/cols 1..4 (pad 1, 2)
    assert torch.equal(back[0, 0], expected)
    strided = SameConv4(1, 1, stride=2)
    assert _conv_back(strided, torch.ones(1, 1, 5, 5), torch.Size([1, 1, 11, 11])).shape[-2:] == (11, 11)


def test_unpool_adds_values_whose_switches_coincide():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 5.0                           # the max of all four overlapping 3x3 windows
    pooled, switches = torch.nn.MaxPool2d(3, 2, return_indices=True)(x)
    assert pooled.shape == (1, 1, 2, 2) and (switches == 12).all()
    back = unpool(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), switches, x.shape)
    expected = torch.zeros(5, 5)
    expected[2, 2] = 10.0
    assert torch.equal(back[0, 0], expected)


class _DeconvLeakyReLU(torch.autograd.Function):
    """Leaky ReLU forward; the deconvnet rule backward (ReLU of the incoming signal)."""

    @staticmethod
    def forward(ctx, x, slope=0.01):
        return torch.where(x > 0, x, slope * x)

    @staticmethod
    def backward(ctx, grad):
        return torch.relu(grad), None


@pytest.mark.parametrize("layer", ["conv2b", "pool2", "conv4b"])
def test_activation_network_equals_autograd_with_the_deconvnet_rule(detector, layer, monkeypatch):
    images = torch.randn(2, 3, 48, 48)
    ours = ActivationNetwork(detector).project(images, layer, signal="activation")
    monkeypatch.setattr(detector_module.F, "leaky_relu", lambda x, slope: _DeconvLeakyReLU.apply(x, slope))
    x = images.clone().requires_grad_(True)
    _, trace = detector.trace(x)
    start = trace.activations[layer]
    (reference,) = torch.autograd.grad(start, x, start.detach().clamp(min=0))
    assert ours.shape == images.shape
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-4)
    assert ours.abs().sum() > 0


def test_activation_network_errors_and_grade_signal(detector):
    net = ActivationNetwork(detector)
    with pytest.raises(ValueError, match="layer"):
        net.project(torch.randn(1, 3, 48, 48), "conv9")
    with pytest.raises(ValueError, match="signal"):
        net.project(torch.randn(1, 3, 48, 48), signal="class")
    with pytest.raises(TypeError, match="detector"):
        ActivationNetwork(torch.nn.Conv2d(3, 3, 3))
    maps = net.lesion_map(torch.randn(2, 3, 48, 48), "conv3b", signal="grade")
    assert maps.shape == (2, 48, 48) and maps.min() >= 0
    assert torch.allclose(maps.flatten(1).amax(1), torch.ones(2)) or maps.sum() == 0


def test_threshold_and_boxes_recover_known_blobs():
    activation = np.zeros((40, 40))
    activation[5:9, 10:13] = 1.0              # 4 x 3 blob
    activation[20:22, 30:36] = 0.8            # 2 x 6 blob
    activation[30, 5] = 0.5                   # single pixel, below the fixed threshold of 0.6
    activation[35, 35] = 0.2                  # noise
    binary = threshold_map(activation, 0.6)
    found = lesion_boxes(binary)
    assert [box for box, _ in found] == [(10, 5, 13, 9), (30, 20, 36, 22)]
    assert [int(region.sum()) for _, region in found] == [12, 12]
    assert len(lesion_boxes(threshold_map(activation, 0.3))) == 3
    assert len(lesion_boxes(threshold_map(activation, 0.3), min_area=2)) == 2
    assert [box for box, _ in lesion_boxes(threshold_map(activation, 0.6, dilate=1))][0] == (9, 4, 14, 10)
    assert len(lesion_boxes(threshold_map(activation, "otsu"))) >= 2
    assert not threshold_map(np.zeros((8, 8)), "otsu").any()
    with pytest.raises(ValueError, match="threshold"):
        threshold_map(activation, 1.5)
    with pytest.raises(ValueError, match="activation"):
        threshold_map(np.zeros(5), 0.5)


def test_gram_matches_a_hand_computation():
    features = torch.randn(3, 4, 5)
    weights = torch.rand(4, 5)
    flat = (features * weights).reshape(3, 20).T        # (N, C)
    assert torch.allclose(gram(features, weights), flat.T @ flat / (20 * 3), atol=1e-6)
    assert gram(torch.randn(2, 3, 4, 5)).shape == (2, 3, 3)
    assert layer_box((10, 20, 14, 22), 64, (32, 32)) == (5, 10, 7, 11)
    assert layer_box((63, 63, 64, 64), 64, (15, 15)) == (14, 14, 15, 15)


def test_extract_descriptors_on_a_phantom(detector, fundus):
    item = fundus[0]
    found = extract_descriptors(detector, item["image"], threshold=0.3, fov=item["fov"][0],
                                lesion_masks=item["lesions"], source="p0")
    assert found, "expected at least one region above 30% of the maximum"
    for d in found:
        x0, y0, x1, y1 = d.box
        assert d.mask.shape == d.activation.shape == (y1 - y0, x1 - x0)
        assert d.features["conv1b"].shape[0] == 4 and d.grams["conv2b"].shape == (8, 8)
        assert np.allclose(d.grams["conv1b"], d.grams["conv1b"].T, atol=1e-7)
        assert d.kind in ("microaneurysm", "haemorrhage", "hard_exudate", "cotton_wool", "neovascularisation", "none")
    with pytest.raises(ValueError, match="style_layers"):
        extract_descriptors(detector, item["image"], style_layers=("conv7",))
    with pytest.raises(ValueError, match="image"):
        extract_descriptors(detector, item["image"][None])


def _descriptor(box=(4, 4, 8, 7), kind="haemorrhage", size=32, seed=0):
    rng = np.random.default_rng(seed)
    h, w = box[3] - box[1], box[2] - box[0]
    feats = {"conv1b": rng.random((4, 2, 2)).astype(np.float32), "conv2b": rng.random((8, 1, 1)).astype(np.float32)}
    grams = {k: gram(torch.from_numpy(v)).numpy() for k, v in feats.items()}
    return Descriptor(box, size, np.ones((h, w), bool), rng.random((h, w)).astype(np.float32), feats, grams, kind, "t")


def test_bank_manipulations_and_errors():
    bank = DescriptorBank([_descriptor(), _descriptor((10, 10, 20, 20), "hard_exudate", seed=1)])
    assert len(bank.filter(kind="haemorrhage")) == 1 and len(bank.filter(min_area=50)) == 1
    assert len(bank.filter(max_area=12)) == 1
    moved = bank.move(0, (20, 25))
    assert moved[0].box == (20, 25, 24, 28) and bank[0].box == (4, 4, 8, 7)        # a new bank; the old is kept
    copied = bank.copy(1, [(0, 0), (22, 22)])
    assert len(copied) == 4 and copied[3].box == (22, 22, 32, 32)
    assert len(bank.delete(0)) == 1 and len(bank.delete()) == 0
    with pytest.raises(ValueError, match="leaves"):
        bank.move(1, (25, 0))
    with pytest.raises(IndexError, match="index"):
        bank.move(5, (0, 0))
    with pytest.raises(IndexError, match="empty"):
        DescriptorBank().copy(0, [(0, 0)])
    with pytest.raises(ValueError, match="kind"):
        bank.filter(kind="drusen")
    with pytest.raises(ValueError, match="image size"):
        bank.extend([_descriptor(size=64)])


def test_bank_save_load_round_trip(tmp_path):
    bank = DescriptorBank([_descriptor(), _descriptor((10, 10, 20, 20), "cotton_wool", seed=1)])
    path = bank.save(tmp_path / "bank.npz")
    loaded = DescriptorBank.load(path)
    assert len(loaded) == 2
    for a, b in zip(bank, loaded):
        assert a.box == b.box and a.kind == b.kind and a.image_size == b.image_size and a.source == b.source
        assert np.array_equal(a.mask, b.mask) and np.allclose(a.activation, b.activation)
        for name in a.grams:
            assert np.allclose(a.grams[name], b.grams[name]) and np.allclose(a.features[name], b.features[name])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a descriptor bank"):
        DescriptorBank.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="path"):
        DescriptorBank.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=".npz"):
        bank.save(tmp_path / "bank.pkl")


def test_generator_and_discriminator_shapes_and_input_errors():
    gen = UNetGenerator((4, 8), width=8, z_dim=6)
    vessels, fov = torch.rand(2, 1, 32, 32).round(), torch.ones(2, 1, 32, 32)
    fov[..., :2] = 0
    out = gen(vessels, fov, torch.randn(2, 6), [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8)])
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert (out[..., :2] == 0).all()                                     # black outside the field of view
    assert VesselDiscriminator(8)(out, vessels).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="multiple of 16"):
        gen(torch.rand(2, 1, 40, 40), torch.ones(2, 1, 40, 40), torch.randn(2, 6))
    with pytest.raises(ValueError, match="fov"):
        gen(vessels, torch.ones(2, 1, 16, 16), torch.randn(2, 6))
    with pytest.raises(ValueError, match="z"):
        gen(vessels, fov, torch.randn(2, 5))
    with pytest.raises(ValueError, match="maps"):
        gen(vessels, fov, torch.randn(2, 6), [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 8, 8)])
    with pytest.raises(ValueError, match="vessels"):
        VesselDiscriminator(8)(out, vessels[:, :, :16])


def test_a_disc_aware_generator_takes_vessels_and_disc_and_names_a_missing_channel():
    vessels, disc, fov = torch.rand(2, 1, 32, 32).round(), torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32)
    disc[..., 10:16, 20:26] = 1
    both = anatomy_map(vessels, disc)
    assert both.shape == (2, 2, 32, 32) and torch.equal(both[:, :1], vessels) and torch.equal(both[:, 1:], disc)
    assert anatomy_map(vessels) is vessels and anatomy_map(vessels[0], disc[0]).shape == (1, 2, 32, 32)
    torch.manual_seed(0)
    gen = UNetGenerator((4, 8), width=8, z_dim=6, anatomy_channels=2).eval()
    z = torch.randn(2, 6)
    with torch.no_grad():
        out, moved = gen(both, fov, z), gen(anatomy_map(vessels, disc.roll(8, -1)), fov, z)
    assert out.shape == (2, 3, 32, 32)
    assert (out - moved).abs()[..., 10:16, 20:26].mean() > (out - moved).abs()[..., 0:6, 0:6].mean()   # the disc channel is read
    assert VesselDiscriminator(8, anatomy_channels=2)(out, both).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="optic-disc mask"):
        gen(vessels, fov, z)
    with pytest.raises(ValueError, match=r"\(2, 2, 32, 32\)"):
        VesselDiscriminator(8, anatomy_channels=2)(out, vessels)
    with pytest.raises(ValueError, match="anatomy_channels"):
        UNetGenerator((4, 8), anatomy_channels=3)
    with pytest.raises(ValueError, match="vessels, disc"):
        anatomy_map(vessels, disc[:, :, :16])


def test_descriptor_maps_paste_features_at_the_box():
    d = _descriptor((8, 8, 12, 12), size=32)
    maps = descriptor_maps([DescriptorBank([d]), DescriptorBank()], 32, (4, 8))
    assert maps[0].shape == (2, 4, 16, 16) and maps[1].shape == (2, 8, 8, 8)
    assert torch.allclose(maps[0][0, :, 4:6, 4:6], torch.from_numpy(d.features["conv1b"]))
    assert maps[0][0].abs().sum() == maps[0][0, :, 4:6, 4:6].abs().sum() and maps[0][1].abs().sum() == 0
    with pytest.raises(ValueError, match="32-px images"):
        descriptor_maps([DescriptorBank([d])], 64, (4, 8))
    with pytest.raises(ValueError, match="channels"):
        descriptor_maps([DescriptorBank([d])], 32, (5, 8))
    outside = Descriptor((30, 30, 34, 34), 32, d.mask, d.activation, d.features, d.grams)
    with pytest.raises(ValueError, match="outside"):
        descriptor_maps([DescriptorBank([outside])], 32, (4, 8))


def test_losses_on_tiny_inputs(detector):
    assert adversarial_loss(torch.tensor([1.0, 3.0]), True) == pytest.approx(2.0)        # (0 + 4) / 2
    assert adversarial_loss(torch.tensor([1.0, 3.0]), False) == pytest.approx(5.0)       # (1 + 9) / 2
    image = torch.zeros(1, 1, 3, 3)
    image[0, 0, 1, 1] = 1.0
    # 4 vertical and 4 horizontal unit steps among 6 neighbour pairs each
    assert total_variation(image) == pytest.approx(2 * 2 / 6)
    features = RandomFeatureNet(0)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert detail_loss(features, a, a) == 0
    assert detail_loss(features, a, b) > 0
    assert detail_loss(features, a, b, torch.zeros(2, 1, 32, 32)) == 0
    with pytest.raises(ValueError, match="shapes"):
        detail_loss(features, a, b[:1])


def test_global_statistics_over_the_field_of_view_ignore_the_surround(detector):
    """The global loss with ``fov``: weighted Gram / mean over the FOV's feature cells, so pixels whose cells lie
    wholly outside the FOV do not count; without ``fov`` it is the whole-image Gram + mean (hand computation)."""
    from medxai_lib.data.lesions import gram
    from medxai_lib.train.pathogan import detector_input
    raw = FundusPhantom(2, size=64, seed=5, grade_probs=(0, 0, 0.5, 0.5, 0), normalize=False)[0]["image"]
    bank = DescriptorBank(extract_descriptors(detector, detector_input(raw[None])[0], threshold=0.3)[:2])
    scales = {"conv1b": feature_scale(bank, "conv1b")}
    fov = torch.zeros(1, 1, 64, 64)
    fov[..., 16:48, 16:48] = 1
    loss = lambda image, f=None: pathological_loss(detector, image[None], [bank], "global", ("conv1b",), scales, f).detach()  # noqa: E731
    changed = raw.clone()
    changed[:, :6, :6] = torch.rand(3, 6, 6)                           # the surround's corner: cells wholly outside the FOV
    assert loss(changed, fov).item() == pytest.approx(loss(raw, fov).item(), rel=1e-6)
    assert loss(changed).item() != pytest.approx(loss(raw).item(), rel=1e-6)   # the whole-image version sees it
    _, trace = detector.trace(detector_input(raw[None]), until="conv1b")
    inverse = torch.from_numpy(1 / scales["conv1b"]).view(-1, 1, 1)
    acts = trace.activations["conv1b"][0] * inverse
    target_gram = torch.stack([torch.from_numpy(d.grams["conv1b"]) for d in bank]).mean(0) * (inverse.view(-1, 1) * inverse.view(1, -1))
    target_mean = torch.stack([torch.from_numpy(d.features["conv1b"]).mean((1, 2)) for d in bank]).mean(0) * inverse.view(-1)
    by_hand = (gram(acts) - target_gram).pow(2).mean() + (acts.mean((1, 2)) - target_mean).pow(2).mean()
    assert loss(raw).item() == pytest.approx(by_hand.item(), rel=1e-5)
    whole = torch.ones(1, 1, 64, 64)
    assert loss(raw, whole).item() == pytest.approx(by_hand.item(), rel=1e-5)   # a FOV of everything changes nothing
    with pytest.raises(ValueError, match="fov"):
        loss(raw, torch.ones(1, 64, 64))


def test_pathological_loss_is_zero_for_the_source_and_local_to_the_box(detector, fundus):
    from medxai_lib.train.pathogan import detector_input
    raw = FundusPhantom(4, size=64, seed=5, grade_probs=(0, 0, 0.5, 0.5, 0), normalize=False)[0]["image"]
    found = extract_descriptors(detector, detector_input(raw[None])[0], threshold=0.3)
    bank = DescriptorBank(found[:1])
    scales = {name: feature_scale(bank, name) for name in ("conv1b", "conv2b")}
    loss = lambda image, banks, mode="local": pathological_loss(detector, image, banks, mode, scales=scales)  # noqa: E731
    assert loss(raw[None], [bank]) < 1e-6                              # the source image matches itself
    x0, y0, x1, y1 = bank[0].box
    changed = raw.clone()
    changed[:, :8, :8] = 0.5                                           # far from the box (if the box is not there)
    if x0 >= 16 or y0 >= 16:
        assert loss(changed[None], [bank]) < 1e-6
    moved = bank.move(0, (64 - (x1 - x0), 64 - (y1 - y0)))
    assert loss(raw[None], [moved]) > 1e-2
    assert loss(raw[None], [bank], "global") > 1e-2
    assert loss(raw[None], [DescriptorBank()]) == 0
    unscaled = pathological_loss(detector, raw[None], [moved])
    assert unscaled < loss(raw[None], [moved])                         # raw features are small: scaling matters
    with pytest.raises(ValueError, match="mode"):
        pathological_loss(detector, raw[None], [bank], mode="everywhere")
    with pytest.raises(ValueError, match="one bank per image"):
        pathological_loss(detector, raw[None], [bank, bank])


def test_placements_stay_inside_the_field_of_view():
    bank = DescriptorBank([_descriptor((4, 4, 8, 7), size=64)])
    fov = torch.zeros(64, 64, dtype=torch.bool)
    fov[16:48, 16:48] = True
    placed = random_placements(bank, fov, 20, np.random.default_rng(0))
    assert len(placed) == 20
    for d in placed:
        x0, y0, x1, y1 = d.box
        assert fov[y0:y1, x0:x1].all()
    assert box_mask([placed], 64, margin=0).sum() > 0
    with pytest.raises(ValueError, match="empty"):
        random_placements(DescriptorBank(), fov, 1, np.random.default_rng(0))


def test_matched_placements_put_a_pool_descriptor_at_each_target_centre():
    fov = torch.zeros(64, 64, dtype=torch.bool)
    fov[8:56, 8:56] = True
    targets = DescriptorBank([_descriptor((20, 20, 26, 24), size=64), _descriptor((40, 30, 44, 34), size=64),
                              _descriptor((9, 9, 13, 13), size=64)])
    pool = DescriptorBank([_descriptor((0, 0, 8, 4), size=64), _descriptor((50, 50, 52, 54), size=64)])
    placed = matched_placements(targets, pool, fov, np.random.default_rng(0))
    assert len(placed) == len(targets)
    for t, d in zip(targets, placed):
        x0, y0, x1, y1 = d.box
        assert fov[y0:y1, x0:x1].all()
        assert (x1 - x0, y1 - y0) in {(8, 4), (2, 4)}                     # a pool descriptor, moved not resized
        if t.box[0] > 12:                                                 # away from the FOV edge: same centre
            assert abs((x0 + x1) - (t.box[0] + t.box[2])) <= 1 and abs((y0 + y1) - (t.box[1] + t.box[3])) <= 1
    x0, y0, x1, y1 = placed[2].box                                        # at the edge: shifted inwards
    assert x0 >= 8 and y0 >= 8
    with pytest.raises(ValueError, match="pool: empty"):
        matched_placements(targets, DescriptorBank(), fov, np.random.default_rng(0))
    tiny = torch.zeros(64, 64, dtype=torch.bool)
    tiny[30:33, 30:33] = True
    with pytest.raises(ValueError, match="no descriptor of the pool fits"):
        matched_placements(targets, pool, tiny, np.random.default_rng(0))


def test_fit_pathogan_runs_caches_and_rejects_bad_input(detector):
    healthy = FundusPhantom(4, size=32, seed=1, healthy=True, normalize=False)
    bank = DescriptorBank([_descriptor((8, 8, 12, 12), size=32)])
    config = PathoGANConfig(steps=2, batch_size=2, width=8, z_dim=4)
    first = fit_pathogan(detector, healthy, bank, config, data_key={"test": 1})
    assert len(first.history) == 2 and not first.from_cache
    assert set(first.history[0]) == {"step", "adversarial", "detail", "pathological", "tv"}
    second = fit_pathogan(detector, healthy, bank, config, data_key={"test": 1})
    assert second.from_cache
    for p, q in zip(first.generator.parameters(), second.generator.parameters()):
        assert torch.equal(p, q)
    item = healthy[0]
    assert second.generator.anatomy_channels == 2                      # disc_channel: vessels and the optic disc
    out = synthesize(second.generator, anatomy_map(item["vessels"], item["disc"]), item["fov"], bank)
    assert out.shape == (1, 3, 32, 32)
    vessels_only = fit_pathogan(detector, healthy, bank, replace(config, disc_channel=False), data_key={"test": 1})
    assert vessels_only.generator.anatomy_channels == 1 and not vessels_only.from_cache
    assert synthesize(vessels_only.generator, item["vessels"], item["fov"], bank).shape == (1, 3, 32, 32)
    no_disc = [{k: v for k, v in healthy[i].items() if k != "disc"} for i in range(len(healthy))]
    with pytest.raises(ValueError, match="'disc'"):
        fit_pathogan(detector, no_disc, bank, config)
    with pytest.raises(ValueError, match="empty"):
        fit_pathogan(detector, healthy, DescriptorBank(), config)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_pathogan(detector, FundusPhantom(2, size=32, healthy=True), bank, config)
    with pytest.raises(ValueError, match="pathology"):
        PathoGANConfig(pathology="nowhere")
    with pytest.raises(ValueError, match="one bank per vessel map"):
        synthesize(second.generator, torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32), [bank])


def test_generator_step_leaves_the_discriminator_weights_alone(detector, monkeypatch):
    """The generator's backward pass computes no discriminator weight gradients (it only needs the gradient
    through the discriminator to the image): after a one-step fit the discriminator's gradients are those of its
    own step, and its parameters are trainable again."""
    import medxai_lib.train.pathogan as pathogan
    healthy = FundusPhantom(4, size=32, seed=1, healthy=True, normalize=False)
    bank = DescriptorBank([_descriptor((8, 8, 12, 12), size=32)])
    seen = {}
    original = pathogan._generator_terms

    def recording(fake, batch, banks, keep, discriminator, *args, **kwargs):
        seen["grads"] = [p.grad.clone() for p in discriminator.parameters()]
        seen["frozen"] = not any(p.requires_grad for p in discriminator.parameters())
        return original(fake, batch, banks, keep, discriminator, *args, **kwargs)

    monkeypatch.setattr(pathogan, "_generator_terms", recording)
    result = fit_pathogan(detector, healthy, bank, PathoGANConfig(steps=1, batch_size=2, width=8, z_dim=4))
    assert seen["frozen"]
    after = [p.grad for p in result.discriminator.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(seen["grads"], after))
    assert all(p.requires_grad for p in result.discriminator.parameters())


def test_synthesize_in_chunks_equals_one_batch_and_uses_eval_statistics():
    torch.manual_seed(0)
    gen = UNetGenerator((4, 8), width=8, z_dim=6)
    gen.train()
    for _ in range(3):     # move the batch-norm running statistics away from their initial values
        gen(torch.rand(5, 1, 32, 32).round(), torch.ones(5, 1, 32, 32), torch.randn(5, 6))
    d = _descriptor((8, 8, 12, 12), size=32)
    vessels, fov = torch.rand(7, 1, 32, 32).round(), torch.ones(7, 1, 32, 32)
    banks = [DescriptorBank([d]) if i % 2 else DescriptorBank() for i in range(7)]
    whole = synthesize(gen, vessels, fov, banks, chunk=7)
    assert gen.training                     # the caller's mode is restored
    assert all(p.is_contiguous() for p in gen.parameters())     # drawn in channels-last order, the layout handed back
    gen.to(memory_format=torch.channels_last)
    assert torch.allclose(synthesize(gen, vessels, fov, banks, chunk=7), whole, atol=1e-6)
    assert gen.enc1[0].weight.is_contiguous(memory_format=torch.channels_last)   # a channels-last caller keeps its layout
    gen.to(memory_format=torch.contiguous_format)
    for chunk in (1, 3):
        assert torch.allclose(synthesize(gen, vessels, fov, banks, chunk=chunk), whole, atol=1e-6)
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32))
    with torch.no_grad():
        by_hand = gen.eval()(vessels, fov, z, descriptor_maps(banks, 32, (4, 8)))
        in_train_mode = gen.train()(vessels, fov, z, descriptor_maps(banks, 32, (4, 8)))
    assert torch.allclose(whole, by_hand, atol=1e-6) and not torch.allclose(whole, in_train_mode, atol=1e-3)
    with pytest.raises(ValueError, match="chunk"):
        synthesize(gen, vessels, fov, banks, chunk=0)
