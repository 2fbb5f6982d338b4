"""Notebook 06's new pieces: lesion crops, the independent type classifier's input checks, kind assignment
on overlapping lesions, the fair baseline's detail mask, activation-map scores and severity statistics."""
import numpy as np
import pytest
import torch

from medxai_lib.data import FundusPhantom
from medxai_lib.data.lesion_crops import CROP_KINDS, LesionCropDataset, crops_at
from medxai_lib.evaluate.studies.inoculation import (brightness_map, map_scores, median_potent, per_image_spearman,
                                             randomised_detector, read_boxes, rule_grade_of)
from medxai_lib.explain.descriptors import Descriptor, DescriptorBank, _majority_kind
from medxai_lib.models.detector import DRDetector
from medxai_lib.models.lesion_classifier import LesionTypeNet, classify_crops
from medxai_lib.train.pathogan import detail_keep_mask


def _descriptor(box, kind="hard_exudate", size=48):
    h, w = box[3] - box[1], box[2] - box[0]
    return Descriptor(box, size, np.ones((h, w), bool), np.ones((h, w), np.float32), {}, {}, kind)


def test_crops_are_centred_and_zero_padded():
    images = torch.arange(2 * 3 * 10 * 10, dtype=torch.float32).view(2, 3, 10, 10)
    crops = crops_at(images, [1, 0], [(5, 5), (0, 0)], size=4)
    assert crops.shape == (2, 3, 4, 4)
    assert torch.equal(crops[0], images[1, :, 3:7, 3:7])
    assert torch.equal(crops[1, :, :2, :2], torch.zeros(3, 2, 2)) and torch.equal(crops[1, :, 2:, 2:], images[0, :, :2, :2])
    with pytest.raises(ValueError, match="centres"):
        crops_at(images, [0], [(1, 1), (2, 2)])
    with pytest.raises(ValueError, match="images"):
        crops_at(images[0], [0], [(1, 1)])


def test_lesion_crop_dataset_labels_each_phantom_lesion_and_clean_background():
    phantom = FundusPhantom(4, size=64, seed=3, grade_probs=(0, 0, 0.5, 0.5, 0), normalize=False)
    data = LesionCropDataset(phantom, size=12, background_per_image=3, seed=0)
    lesions = sum(sum(1 for b in phantom[i]["meta"]["boxes"] if b[0] in CROP_KINDS) for i in range(4))
    assert (data.labels > 0).sum() == lesions and (data.labels == 0).sum() == 12
    assert data[0]["image"].shape == (3, 12, 12) and 0 <= float(data.images.min()) <= float(data.images.max()) <= 1
    with pytest.raises(ValueError, match="normalize=False"):
        LesionCropDataset(FundusPhantom(1, size=64, seed=0), size=12)


def test_type_classifier_checks_its_input():
    net = LesionTypeNet(crop=16, width=4)
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, len(CROP_KINDS))
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        net(torch.rand(2, 3, 12, 12))
    with pytest.raises(ValueError, match="x"):
        net(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="crop"):
        LesionTypeNet(crop=7)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classify_crops(net, torch.rand(2, 3, 16, 16) - 0.5)
    probs = classify_crops(net, torch.rand(3, 3, 16, 16))
    assert torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)


def test_read_boxes_reads_one_row_per_box_and_rule_grade_counts_kinds():
    net = LesionTypeNet(crop=16, width=4)
    banks = [DescriptorBank([_descriptor((10, 10, 14, 14)), _descriptor((20, 20, 24, 24), "cotton_wool")]), DescriptorBank()]
    reading = read_boxes(net, torch.rand(2, 3, 48, 48), banks)
    assert list(reading.kinds) == ["hard_exudate", "cotton_wool"] and list(reading.image_index) == [0, 0]
    assert reading.p_lesion.shape == (2,) and set(reading.predicted) <= set(CROP_KINDS)
    with pytest.raises(ValueError, match="empty"):
        read_boxes(net, torch.rand(1, 3, 48, 48), [DescriptorBank()])
    assert rule_grade_of(["hard_exudate"] * 8) == 2 and rule_grade_of(["cotton_wool"] * 2) == 3
    assert rule_grade_of(["none", "microaneurysm"]) == 1 and rule_grade_of([]) == 0


def test_kind_is_the_majority_overlap_when_lesions_overlap():
    masks = np.zeros((5, 20, 20), bool)
    masks[1, 2:10, 2:10] = True          # a haemorrhage covering most of the region
    masks[2, 8:12, 8:12] = True          # an exudate overlapping its corner
    region = np.ones((10, 10), bool)
    assert _majority_kind(region, (2, 2, 12, 12), masks) == "haemorrhage"
    masks[2, 2:12, 2:12] = True          # now the exudate covers more of the region
    assert _majority_kind(region, (2, 2, 12, 12), masks) == "hard_exudate"
    assert _majority_kind(region[:6, :6], (14, 14, 20, 20), masks) == "none"
    assert _majority_kind(region, (2, 2, 12, 12), None) == "unknown"


def test_kind_counts_the_lesion_painted_on_top():
    masks = np.zeros((5, 20, 20), bool)
    masks[1, 2:12, 2:12] = True          # a haemorrhage under the whole region (100 px)
    masks[2, 2:12, 2:8] = True           # an exudate painted over 60 of them
    region = np.ones((10, 10), bool)
    assert _majority_kind(region, (2, 2, 12, 12), masks) == "hard_exudate"     # raw overlap would say haemorrhage
    masks[2] = False
    masks[3, 2:12, 2:6] = True           # a cotton-wool spot over 40 pixels: the haemorrhage stays the majority
    assert _majority_kind(region, (2, 2, 12, 12), masks) == "haemorrhage"
    masks[4, 2:12, 2:12] = True          # new vessels are painted first, under everything
    assert _majority_kind(region, (2, 2, 12, 12), masks) == "haemorrhage"


def test_fair_baseline_detail_mask_excludes_the_boxes_for_both_modes():
    fov = torch.ones(2, 1, 32, 32)
    keep = detail_keep_mask([DescriptorBank([_descriptor((4, 4, 8, 8), size=32)]), DescriptorBank()], fov)
    assert keep.shape == (2, 1, 32, 32)
    assert keep[0, 0, 3:9, 3:9].sum() == 0 and keep[0, 0].sum() == 32 * 32 - 36 and keep[1].sum() == 32 * 32
    with pytest.raises(ValueError, match="banks"):
        detail_keep_mask([DescriptorBank()], fov)


def test_map_scores_pointing_and_enrichment_by_hand():
    maps, masks, fov = torch.zeros(2, 8, 8), torch.zeros(2, 8, 8), torch.ones(2, 8, 8)
    masks[:, 0, 0] = 1                    # lesion: 1 of 64 pixels
    maps[0, 0, 0], maps[0, 7, 7] = 3, 1   # 3/4 of the mass on the lesion, peak on it
    maps[1, 5, 5] = 1                     # peak far away
    scores = map_scores(maps, masks, fov, tolerance=1)
    assert scores["pointing"].tolist() == [1.0, 0.0]
    assert np.allclose(scores["enrichment"], [0.75 * 64, 0.0])
    with pytest.raises(ValueError, match="maps"):
        map_scores(maps, masks[:1], fov)


def test_brightness_map_and_randomised_detector():
    images, fov = torch.rand(2, 3, 8, 8), torch.zeros(2, 1, 8, 8)
    fov[:, :, 2:6, 2:6] = 1
    bright = brightness_map(images, fov)
    assert torch.allclose(bright[:, 3, 3], images[:, :, 3, 3].mean(1)) and bright[:, 0, 0].abs().sum() == 0
    detector = DRDetector(width=4)
    shuffled = randomised_detector(detector, seed=1)
    assert all(not torch.equal(a, b) for (n, a), (_, b) in zip(detector.named_parameters(), shuffled.named_parameters())
               if n.endswith("weight"))
    assert torch.equal(next(randomised_detector(detector, 1).parameters()), next(shuffled.parameters()))


def test_per_image_spearman_and_median_potency():
    counts = [0, 1, 2, 4]
    scores = np.array([[0, 3, 1], [1, 2, 1], [2, 1, 1], [3, 0, 1]], float)
    assert np.allclose(per_image_spearman(counts, scores), [1, -1, 0])
    with pytest.raises(ValueError, match="scores"):
        per_image_spearman([0, 1], scores[:2])
    assert median_potent(np.array([5, 1, 3, 2, 4]), ["a", "b", "a", "a", "b"], "a") == 2
    with pytest.raises(ValueError, match="kind"):
        median_potent(np.array([1.0]), ["a"], "z")


def test_two_sample_auc_separates_shifted_images_and_checks_shapes():
    from medxai_lib.evaluate.studies.inoculation import two_sample_auc
    rng = torch.Generator().manual_seed(0)
    a = torch.rand(30, 3, 16, 16, generator=rng)
    assert two_sample_auc(a, (torch.rand(30, 3, 16, 16, generator=rng) + 0.3).clamp(max=1), size=8) > 0.95
    assert two_sample_auc(a, torch.rand(30, 3, 16, 16, generator=rng), size=8) < 0.85
    with pytest.raises(ValueError, match="real, synthetic"):
        two_sample_auc(a[:3], a[:3])


def test_lesion_hits_on_the_source_and_at_random_places():
    from medxai_lib.evaluate.studies.inoculation import lesion_hits
    mask = torch.zeros(48, 48)
    mask[10:14, 10:14] = 1
    on = _descriptor((10, 10, 14, 14))
    off = _descriptor((30, 30, 34, 34))
    on.source = off.source = "image 0"
    bank = DescriptorBank([on, off])
    assert lesion_hits(bank, [mask]).tolist() == [1.0, 0.0]
    fov = torch.ones(48, 48)
    moved = np.mean([lesion_hits(DescriptorBank([on] * 20), [mask], [fov], seed=s).mean() for s in range(5)])
    assert moved < 0.3
    with pytest.raises(ValueError, match="fov"):
        lesion_hits(bank, [mask], seed=0)


def test_dr_detector_rejects_negative_restarts():
    from medxai_lib.train.recipes import dr_detector
    with pytest.raises(ValueError, match="restarts"):
        dr_detector(restarts=-1)


def _depth_ratio(init: str, seed: int) -> float:
    torch.manual_seed(seed)
    _, trace = DRDetector(init=init).eval().trace(torch.rand(4, 3, 96, 96))
    acts = trace.activations if hasattr(trace, "activations") else trace[0]
    return float(acts["conv4b"].detach().std() / acts["conv1a"].detach().std())


@pytest.mark.parametrize("seed", [0, 1])
def test_kaiming_init_keeps_the_signal_through_eight_convs(seed):
    # He et al.'s rule keeps the activation scale; PyTorch's default shrinks it ~20-fold by conv4b, which is
    # what let the grade regressor settle on a constant for one seed in six.
    assert 0.3 < _depth_ratio("kaiming", seed) < 3.0
    assert _depth_ratio("torch", seed) < 0.15


def test_detector_init_is_checked_and_randomising_keeps_the_callers_rng():
    with pytest.raises(ValueError, match="init: expected"):
        DRDetector(init="xavier")
    detector = DRDetector(width=4)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    randomised_detector(detector, seed=1)
    assert torch.equal(torch.rand(3), expected)
    conv = randomised_detector(detector, seed=1).convs["conv2a"]
    assert conv.bias.abs().sum() == 0          # the detector's own init rule (zero biases), not PyTorch's default
