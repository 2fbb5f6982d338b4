"""Notebook 06's second round of Koch controls: the independent grade regressor's recipe, box restoration,
the optic-disc edge measure, the pixel-only detail loss, the gradient-level ablation of the loss terms,
and the crop figure."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from medxai_lib.data import FundusPhantom
from medxai_lib.evaluate.studies.inoculation import box_crops, box_grade_drop, disc_edge_ratio, restore_boxes
from medxai_lib.explain.descriptors import Descriptor, DescriptorBank
from medxai_lib.models.detector import DRDetector
from medxai_lib.models.pathogan import RandomFeatureNet
from medxai_lib.train.pathogan import (PathoGANConfig, PathoGANResult, detail_loss, fit_pathogan,
                                       loss_gradient_shares)


def _descriptor(box=(8, 8, 12, 12), size=32, kind="hard_exudate"):
    h, w = box[3] - box[1], box[2] - box[0]
    feats = {name: np.ones((4, 2, 2), np.float32) for name in ("conv1b", "conv2b")}
    grams = {name: np.eye(4, dtype=np.float32) for name in ("conv1b", "conv2b")}
    return Descriptor(box, size, np.ones((h, w), bool), np.ones((h, w), np.float32), feats, grams, kind)


class _Brightness(torch.nn.Module):
    """A "grade regressor" that is the mean of the normalised image: restoring pixels changes it by hand-computable amounts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((1, 2, 3))[:, None]


def test_fundus_phantom_disc_mask_is_a_disc_inside_the_field_of_view():
    item = FundusPhantom(2, size=96, seed=3, healthy=True)[1]
    disc, fov = item["disc"][0].bool(), item["fov"][0].bool()
    assert disc.any() and not (disc & ~fov).any()
    radius_px = 0.065 * 96
    assert disc.sum().item() == pytest.approx(np.pi * radius_px ** 2, rel=0.15)
    ys, xs = np.nonzero(disc.numpy())
    assert np.ptp(xs) == pytest.approx(2 * radius_px, abs=2) and np.ptp(ys) == pytest.approx(2 * radius_px, abs=2)


def test_restore_boxes_puts_back_exactly_the_grown_boxes():
    images, clean = torch.ones(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    banks = [DescriptorBank([_descriptor((8, 8, 12, 12))]), DescriptorBank()]
    out = restore_boxes(images, clean, banks, margin=1)
    assert torch.equal(out[0, :, 7:13, 7:13], torch.zeros(3, 6, 6))
    assert out[0].sum() == 3 * (32 * 32 - 36) and torch.equal(out[1], images[1])
    with pytest.raises(ValueError, match="banks"):
        restore_boxes(images, clean, banks[:1])
    with pytest.raises(ValueError, match="clean"):
        restore_boxes(images, clean[:, :1], banks)


def test_box_grade_drop_is_the_grade_the_restored_pixels_carried():
    images, clean = torch.full((2, 3, 32, 32), 0.8), torch.full((2, 3, 32, 32), 0.2)
    banks = [DescriptorBank([_descriptor((8, 8, 12, 12))]), DescriptorBank([_descriptor((0, 0, 4, 4))])]
    drop = box_grade_drop(_Brightness(), images, clean, banks, margin=0)
    expected = 0.6 * 16 / (32 * 32) / np.array([0.229, 0.224, 0.225])   # detector_input divides by the ImageNet std
    assert drop == pytest.approx(np.full(2, expected.mean()), rel=1e-4)


def test_box_crops_follow_the_banks_order():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    banks = [DescriptorBank([_descriptor((8, 8, 12, 12), kind="haemorrhage")]),
             DescriptorBank([_descriptor((20, 4, 24, 8)), _descriptor((2, 2, 6, 6), kind="cotton_wool")])]
    crops, kinds, index = box_crops(images, banks, 4)
    assert crops.shape == (3, 3, 4, 4) and kinds.tolist() == ["haemorrhage", "hard_exudate", "cotton_wool"]
    assert index.tolist() == [0, 1, 1]
    assert torch.equal(crops[1], images[1, :, 4:8, 20:24])
    with pytest.raises(ValueError, match="empty"):
        box_crops(images, [DescriptorBank(), DescriptorBank()], 4)


def test_disc_edge_ratio_is_one_for_the_reference_and_drops_when_blurred():
    items = [FundusPhantom(3, size=64, seed=2, healthy=True, normalize=False)[i] for i in range(3)]
    real, disc = torch.stack([it["image"] for it in items]), torch.stack([it["disc"] for it in items])
    assert disc_edge_ratio(real, real, disc) == pytest.approx(np.ones(3))
    blurred = torch.from_numpy(ndimage.gaussian_filter(real.numpy(), sigma=(0, 0, 2, 2)))
    assert (disc_edge_ratio(blurred, real, disc) < 0.8).all()
    with pytest.raises(ValueError, match="disc"):
        disc_edge_ratio(real, real, torch.zeros_like(disc))
    with pytest.raises(ValueError, match="images"):
        disc_edge_ratio(real[:, :1], real, disc)


def test_detail_loss_without_features_is_the_masked_pixel_l1():
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    keep = (torch.rand(2, 1, 32, 32) > 0.5).float()
    assert detail_loss(None, a, b, keep).item() == pytest.approx(((a - b).abs() * keep).mean().item(), rel=1e-6)
    assert detail_loss(RandomFeatureNet(0), a, b, keep).item() > detail_loss(None, a, b, keep).item()


def test_loss_gradient_shares_sum_to_one_and_follow_the_weights():
    torch.manual_seed(0)
    detector = DRDetector(width=4, dense=16).eval()
    healthy = FundusPhantom(4, size=32, seed=1, healthy=True, normalize=False)
    bank = DescriptorBank([_descriptor()])
    shares = {}
    for weight in (0.0, 0.005, 1.0):
        config = PathoGANConfig(steps=2, batch_size=2, width=8, z_dim=4, adversarial_weight=weight)
        result = fit_pathogan(detector, healthy, bank, config)
        assert result.discriminator is not None
        shares[weight] = loss_gradient_shares(result, detector, healthy, bank, config, batches=2)
        assert sum(shares[weight].values()) == pytest.approx(1.0)
    assert shares[0.0]["adversarial"] == 0.0
    assert shares[0.005]["adversarial"] < shares[1.0]["adversarial"]
    with pytest.raises(ValueError, match="discriminator"):
        loss_gradient_shares(PathoGANResult(result.generator), detector, healthy, bank, config)
    with pytest.raises(ValueError, match="batches"):
        loss_gradient_shares(result, detector, healthy, bank, config, batches=0)


def test_pixel_only_generator_has_its_own_cache_key_and_the_default_keeps_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path))
    torch.manual_seed(0)
    detector = DRDetector(width=4, dense=16).eval()
    healthy = FundusPhantom(4, size=32, seed=1, healthy=True, normalize=False)
    bank = DescriptorBank([_descriptor()])
    base = PathoGANConfig(steps=1, batch_size=2, width=8, z_dim=4)
    default = fit_pathogan(detector, healthy, bank, base, data_key={"t": 1})
    pixel = fit_pathogan(detector, healthy, bank, PathoGANConfig(**{**base.__dict__, "detail_features": False}), data_key={"t": 1})
    assert default.checkpoint != pixel.checkpoint
    again = fit_pathogan(detector, healthy, bank, base, data_key={"t": 1})
    assert again.from_cache and again.checkpoint == default.checkpoint and again.discriminator is not None


def test_independent_detector_recipe_checks_its_arguments():
    from medxai_lib.train.recipes import TrainedDetector, dr_detector
    with pytest.raises(ValueError, match="arch"):
        dr_detector(arch="resnet")
    other = TrainedDetector(None, FundusPhantom(3, size=64, seed=9), FundusPhantom(2, size=64, seed=1009), None)
    with pytest.raises(ValueError, match="data"):
        dr_detector(seed=0, image_size=64, n_train=3, n_val=2, arch="bn_cnn", data=other)


def test_crop_pairs_and_severity_figure_with_a_second_detector():
    import matplotlib.pyplot as plt
    from medxai_lib.viz.fundus import plot_crop_pairs, plot_severity_by_kind
    real = {"haemorrhage": torch.rand(4, 3, 8, 8), "hard_exudate": torch.rand(2, 3, 8, 8)}
    fig = plot_crop_pairs(real, {"haemorrhage": torch.rand(3, 3, 8, 8), "cotton_wool": torch.rand(1, 3, 8, 8)}, per_side=4)
    assert len(fig.axes) == 8 and sum(bool(ax.images) for ax in fig.axes) == 7   # one kind in both, 4 real + 3 synthetic
    with pytest.raises(ValueError, match="no lesion kind"):
        plot_crop_pairs(real, {"cotton_wool": torch.rand(1, 3, 8, 8)})
    counts = [0, 1, 2]
    fig = plot_severity_by_kind(counts, {"hard_exudate": np.ones((3, 4))}, {"hard_exudate": np.array([0, 2, 2])},
                                second={"hard_exudate": np.full((3, 4), -0.6)})
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("independent" in label for label in labels) and fig.axes[0].get_ylim()[0] <= -0.8
    plt.close("all")


def test_brightness_and_yellowness_maps_skip_the_excluded_disc():
    from medxai_lib.evaluate.studies.inoculation import brightness_map
    images = torch.zeros(1, 3, 16, 16)
    images[0, :, 2, 2] = 1.0                              # a white "disc" pixel
    images[0, :, 10, 10] = torch.tensor([1.0, 0.9, 0.2])  # a yellow "exudate"
    fov, disc = torch.ones(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    disc[0, 0, 2, 2] = 1
    peak = lambda m: divmod(int(m.flatten().argmax()), 16)  # noqa: E731
    assert peak(brightness_map(images, fov)[0]) == (2, 2)
    masked = brightness_map(images, fov, disc, margin=1)
    assert peak(masked[0]) == (10, 10) and masked[0, 1:4, 1:4].abs().sum() == 0 and masked[0, 4, 4] == 0
    yellow = brightness_map(images, fov, colour="yellowness")
    assert yellow[0, 10, 10] == pytest.approx(0.75) and yellow[0, 2, 2] == 0
    with pytest.raises(ValueError, match="colour"):
        brightness_map(images, fov, colour="redness")
    with pytest.raises(ValueError, match="exclude"):
        brightness_map(images, fov, disc[:, :, :8])


def test_spearman_ci_matches_scipy_and_brackets_it():
    from scipy.stats import spearmanr
    from medxai_lib.evaluate.studies.inoculation import spearman_ci
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 60).astype(float)
    y = x + rng.normal(0, 2, 60)
    rho, lo, hi = spearman_ci(x, y, seed=1)
    assert rho == pytest.approx(spearmanr(x, y)[0]) and lo < rho < hi and lo > 0
    rho0, lo0, hi0 = spearman_ci(x, rng.permutation(y), seed=1)
    assert lo0 < 0.3 and hi0 > -0.3 and hi0 - lo0 > 0.2
    assert spearman_ci(np.ones(10), y[:10])[0] == 0.0
    with pytest.raises(ValueError, match="x, y"):
        spearman_ci(x, y[:5])


def test_descriptor_gallery_outlines_the_box_and_shares_one_scale_per_row():
    import matplotlib.pyplot as plt
    from medxai_lib.viz.fundus import plot_descriptor_gallery
    a, b = _descriptor((8, 8, 12, 12)), _descriptor((16, 4, 20, 8), kind="cotton_wool")
    b.grams["conv1b"] = 3 * b.grams["conv1b"]
    fig = plot_descriptor_gallery(DescriptorBank([a, b]), [torch.rand(3, 32, 32)], [0, 0])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 6 and all(ax.patches for ax in image_axes[:2])
    gram_limits = {ax.images[0].get_clim() for ax in image_axes[4:6]}
    assert gram_limits == {(0.0, 3.0)}
    channels = a.grams["conv1b"].shape[0]
    assert image_axes[4].get_xlabel() == "conv1b channel" and [t.get_text() for t in image_axes[4].get_xticklabels()] == ["0", str(channels - 1)]
    assert "channel x channel" in image_axes[4].get_ylabel()
    with pytest.raises(ValueError, match="source_index"):
        plot_descriptor_gallery(DescriptorBank([a, b]), [torch.rand(3, 32, 32)], [0])
    plt.close("all")


def test_real_detail_features_computed_once_give_the_same_loss(monkeypatch):
    from medxai_lib.train import pathogan
    healthy = FundusPhantom(5, size=32, seed=1, healthy=True, normalize=False)
    features = RandomFeatureNet(0)
    cached = pathogan.real_detail_features(features, healthy, torch.device("cpu"), chunk=2)
    assert [tuple(f.shape) for f in cached] == [(5, 16, 32, 32), (5, 32, 16, 16)]
    index = torch.tensor([4, 0, 2])
    real = torch.stack([healthy[int(i)]["image"] for i in index])
    fake, keep = torch.rand(3, 3, 32, 32), (torch.rand(3, 1, 32, 32) > 0.3).float()
    expected = detail_loss(features, fake, real, keep)
    assert detail_loss(features, fake, real, keep, [f[index] for f in cached]).item() == pytest.approx(expected.item(), rel=1e-5)
    wrong = [f[index] for f in cached][::-1]
    assert detail_loss(features, fake, real, keep, [f[index.flip(0)] for f in cached]).item() != pytest.approx(expected.item())
    with pytest.raises(ValueError, match="real_features"):
        detail_loss(features, fake, real, keep, wrong)
    monkeypatch.setattr(pathogan, "REAL_FEATURE_CACHE_BYTES", 1000)      # too big to keep: computed per batch
    assert pathogan.real_detail_features(features, healthy, torch.device("cpu")) is None


def test_fundus_rows_give_maps_a_colour_bar_and_binary_masks_none():
    import matplotlib.pyplot as plt
    from medxai_lib.viz.fundus import plot_fundus_rows
    mask = (torch.rand(2, 16, 16) > 0.7).float()
    fig = plot_fundus_rows({"fundus": torch.rand(2, 3, 16, 16), "lesion mask": mask, "map": torch.rand(2, 16, 16)})
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "map / its maximum"     # the map's row only
    mixed = plot_fundus_rows({"retina | vessel map | synthesis": [torch.rand(3, 16, 16), mask[0], torch.rand(3, 16, 16)]})
    assert not [ax for ax in mixed.axes if ax.get_label() == "<colorbar>"]      # images beside a binary mask: no bar
    plt.close("all")
