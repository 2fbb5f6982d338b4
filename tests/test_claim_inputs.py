"""Functions whose outputs feed notebook claims, checked against hand computations: negation-aware keyword
mentions and the report scores (notebook 05), the severity scores and the most potent descriptor of the
Koch checks (notebook 06), the scoreboard's baseline comparison and the fully randomised copy for the
sanity check (notebook 04). Each also refuses the bad input it validates."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.data.lesion_crops import CROP_KINDS
from medxai_lib.data.lesions import Descriptor, DescriptorBank
from medxai_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from medxai_lib.evaluate.studies.inoculation import most_potent, severity_scores
from medxai_lib.evaluate.studies.mdnet import keyword_mentions, score_reports
from medxai_lib.evaluate.metrics.sanity import randomisation_test, randomised_copy, randomization_order
from medxai_lib.evaluate.studies.scoreboard import MapScores, against_baselines

# ---------------------------------------------------------------- reports: keyword mentions (notebook 05)


def test_keyword_mentions_count_sentences_and_skip_negated_ones():
    texts = ["No effusion.",                                        # negated: not a mention
             "Small effusion.",                                     # a mention
             "Effusions on both sides. No effusion today; effusion again.",   # prefix match; 3 sentences, 1 negated
             "No pneumothorax, small effusion.",                    # a cue earlier in the sentence negates it
             "Effusion is not seen.",                               # only a *preceding* cue counts
             "Clear lungs. Preeffusion.",                           # a cue without the word; not a word prefix
             "EFFUSION without doubt."]                             # case-insensitive; the cue comes after
    aware = keyword_mentions(texts, "effusion", negation_aware=True)
    naive = keyword_mentions(texts, "effusion", negation_aware=False)
    assert aware.dtype == float and aware.shape == (7,)
    assert aware.tolist() == [0, 1, 2, 0, 1, 0, 1]
    assert naive.tolist() == [1, 1, 3, 1, 1, 0, 1]
    assert keyword_mentions(texts, "Effusion", True).tolist() == aware.tolist()      # the keyword's case is ignored
    assert keyword_mentions(["Effusion resolved."], "effusion", True).tolist() == [1]
    assert keyword_mentions([], "effusion", True).shape == (0,)

# ---------------------------------------------------------------- reports: scores of several systems (notebook 05)


def test_score_reports_by_hand():
    """References "a b c d" and "e f g h" (one each). ``copy`` repeats them: every score is perfect and CIDEr-D
    is 10 (each n-gram's idf is log 2, cosine 1, no length penalty). ``partly`` says "a b x y" (2 words and
    1 bigram right) and "e x y z" (1 word right): pooled clipped unigram precision 3/8, bigram 1/6, no
    trigram (BLEU-3 = BLEU-4 = 0), equal lengths (no brevity penalty); ROUGE-L per image LCS 2/4 and 1/4
    (F = 0.5, 0.25); CIDEr-D per image (every n-gram, unseen ones too, weighs log 2): unigram cosines 2/4 and
    1/4, bigram 1/3 and 0, nothing above, mean over the 4 orders x 10."""
    refs = [["a b c d"], ["e f g h"]]
    table, units = score_reports({"copy": ["a b c d", "e f g h"], "partly": ["a b x y", "e x y z"]}, refs)
    assert list(table.index) == ["copy", "partly"]
    assert list(table.columns) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"]
    assert np.allclose(table.loc["copy"].to_numpy(), [1, 1, 1, 1, 1, 10])
    partly, cider = table.loc["partly"], 10 * np.array([1 / 2 + 1 / 3, 1 / 4]) / 4
    assert partly["BLEU-1"] == pytest.approx(3 / 8) and partly["BLEU-2"] == pytest.approx(math.sqrt(3 / 8 * 1 / 6))
    assert partly["BLEU-3"] == 0 and partly["BLEU-4"] == 0
    assert partly["ROUGE-L"] == pytest.approx(0.375) and partly["CIDEr-D"] == pytest.approx(cider.mean())
    assert np.allclose(units["partly"]["rouge"], [0.5, 0.25]) and np.allclose(units["partly"]["cider"], cider)
    # BLEU sufficient statistics per image: matches n=1..4, n-gram totals, candidate and reference length
    assert units["partly"]["bleu"].tolist() == [[2, 1, 0, 0, 4, 3, 2, 1, 4, 4], [1, 0, 0, 0, 4, 3, 2, 1, 4, 4]]
    assert "attributes" not in units["partly"] and "attribute accuracy" not in table.columns


def test_score_reports_attribute_accuracy_and_errors():
    """Attribute accuracy: the share of the 5 grades a report states correctly (a missing sentence is -1,
    never correct). Report 0 states pleomorphism 0 and crowding 2; report 1 states all five."""
    reports = ["there is no nuclear pleomorphism . cells are severely crowded .",
               "nuclei are uniform in size and shape . cells are not crowded . polarity is preserved . "
               "no mitosis is seen . nucleoli are inconspicuous ."]
    grades = np.array([[0, 1, 0, 0, 0],            # pleomorphism right, crowding wrong, three missing: 1/5
                       [0, 0, 0, 0, 1]])           # four right, nucleoli wrong: 4/5
    table, units = score_reports({"system": reports}, [[r] for r in reports], grades)
    assert np.allclose(units["system"]["attributes"], [0.2, 0.8])
    assert table.loc["system", "attribute accuracy"] == pytest.approx(0.5)
    assert table.loc["system", "BLEU-4"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"systems\['short'\]: expected 2 reports, got 1"):
        score_reports({"system": reports, "short": reports[:1]}, [[r] for r in reports])

# ---------------------------------------------------------------- Koch checks: severity and potency (notebook 06)

S = 32


class _PaintsLesions(nn.Module):
    """A stand-in generator: black fundus, and inside the field of view every pasted descriptor's patch
    (the S/2 canvas, upsampled x2) painted with its value, clipped to [0, 1] (overlapping copies stay 1)."""

    descriptor_channels, z_dim = (1, 1), 2

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))                 # synthesize reads the device from it

    def check_inputs(self, vessels, fov, z, maps) -> None:
        assert vessels.shape == fov.shape and z.shape == (len(vessels), self.z_dim)

    def forward(self, vessels, fov, z, maps):
        paint = F.interpolate(maps[0], scale_factor=2, mode="nearest").clamp(0, 1) * fov
        return paint.expand(-1, 3, -1, -1) + 0 * self.anchor


class _CountsBrightPixels(nn.Module):
    """A stand-in grade regressor: ``per_pixel`` x the number of bright pixels (red > 0.5 in [0, 1], read
    back from the detector's ImageNet normalisation)."""

    def __init__(self, per_pixel: float = 1.0) -> None:
        super().__init__()
        self.per_pixel = per_pixel

    def forward(self, x):
        red = x[:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        return ((red > 0.5).float().sum((1, 2)) * self.per_pixel)[:, None]


class _ReadsCottonWool(nn.Module):
    """A stand-in lesion-type reader: "cotton_wool" for a crop with bright pixels, else "none"."""

    crop = 8

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, crops):
        bright = (crops.amax((1, 2, 3)) > 0.5).float()
        logits = torch.zeros(len(crops), len(CROP_KINDS)) + self.anchor
        logits[:, CROP_KINDS.index("cotton_wool")] = 10 * bright
        logits[:, CROP_KINDS.index("none")] = 10 * (1 - bright)
        return logits


def _lesion(width: int, kind: str = "cotton_wool") -> Descriptor:
    """A ``width x width`` lesion of value 1 at the top-left corner of a 32-px image."""
    ones = np.ones((width, width), np.float32)
    features = {"conv1b": np.ones((1, 2, 2), np.float32), "conv2b": np.ones((1, 1, 1), np.float32)}
    return Descriptor((0, 0, width, width), S, ones > 0, ones, features, {}, kind)


def _fundus_inputs(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(n, 1, S, S), torch.ones(n, 1, S, S)


def test_severity_scores_by_hand():
    """n copies of a 4x4 lesion at the first n corners of each image: image 0's corners are apart
    (16 bright pixels per copy); image 1's first two coincide (the second adds nothing). Every detector
    reads the same synthesis; the reader sees cotton-wool spots at all n boxes, graded by the rule
    (0 for none, 2 for one cotton-wool spot, 3 for two or more)."""
    vessels, fov = _fundus_inputs()
    corners = [[(4, 4), (12, 4), (20, 4)], [(8, 8), (8, 8), (20, 20)]]
    counts = [0, 1, 2, 3]
    detectors = {"pixels": _CountsBrightPixels(), "halved": _CountsBrightPixels(0.5)}
    grades, read = severity_scores(_PaintsLesions(), detectors, _lesion(4), vessels, fov, corners, counts)
    expected = np.array([[0, 0], [16, 16], [32, 16], [48, 32]], dtype=float)
    assert set(grades) == {"pixels", "halved"} and read is None
    assert np.array_equal(grades["pixels"], expected) and np.array_equal(grades["halved"], expected / 2)
    _, read = severity_scores(_PaintsLesions(), detectors, _lesion(4), vessels, fov, corners, counts,
                              classifier=_ReadsCottonWool())
    assert read.dtype == float and np.array_equal(read, [[0, 0], [2, 2], [3, 3], [3, 3]])


def test_severity_scores_rejects_bad_input():
    vessels, fov = _fundus_inputs()
    corners = [[(4, 4)], [(8, 8)]]
    with pytest.raises(ValueError, match=r"corners: expected one list of corners per vessel map \(2\), got 1"):
        severity_scores(_PaintsLesions(), {"d": _CountsBrightPixels()}, _lesion(4), vessels, fov, corners[:1], [1])
    with pytest.raises(ValueError, match="detectors: expected a non-empty mapping name -> grade regressor, got dict"):
        severity_scores(_PaintsLesions(), {}, _lesion(4), vessels, fov, corners, [1])
    with pytest.raises(ValueError, match="detectors: .* got list"):
        severity_scores(_PaintsLesions(), [_CountsBrightPixels()], _lesion(4), vessels, fov, corners, [1])
    with pytest.raises(ValueError, match=r"to: a 4x4 box at \(30, 30\) leaves the 32x32 image"):
        severity_scores(_PaintsLesions(), {"d": _CountsBrightPixels()}, _lesion(4), vessels, fov, [[(30, 30)]] * 2, [1])


def test_most_potent_by_hand():
    """Each lesion alone at (10, 10): 2x2, 6x6 and 4x4 bright pixels in image 0; image 1's field of view
    starts at x = 12, so it keeps 0, 4x6 and 2x4 of them. Mean grades (4+0)/2, (36+24)/2, (16+8)/2."""
    vessels, fov = _fundus_inputs()
    fov[1, :, :, :12] = 0
    bank = DescriptorBank([_lesion(2), _lesion(6), _lesion(4)])
    index, grades = most_potent(_PaintsLesions(), _CountsBrightPixels(), bank, vessels, fov, (10, 10))
    assert index == 1 and np.array_equal(grades, [2.0, 30.0, 12.0])
    reordered = DescriptorBank([_lesion(4), _lesion(2), _lesion(6)])
    assert most_potent(_PaintsLesions(), _CountsBrightPixels(), reordered, vessels, fov, (10, 10))[0] == 2


def test_most_potent_rejects_bad_input():
    vessels, fov = _fundus_inputs()
    with pytest.raises(ValueError, match="bank: empty; nothing to choose from"):
        most_potent(_PaintsLesions(), _CountsBrightPixels(), DescriptorBank([]), vessels, fov, (10, 10))
    with pytest.raises(ValueError, match=r"to: a 6x6 box at \(28, 0\) leaves the 32x32 image"):
        most_potent(_PaintsLesions(), _CountsBrightPixels(), DescriptorBank([_lesion(6)]), vessels, fov, (28, 0))

# ---------------------------------------------------------------- scoreboard: against the baselines (notebook 04)


def _board() -> MapScores:
    """Per-image scores whose differences are constant, so every bootstrap CI of a difference is that
    constant (or exactly 0 for a copy): the verdicts cannot depend on the resampling stream."""
    u = np.linspace(0.1, 0.5, 10)                                  # mean 0.3
    a = u + 0.1
    return MapScores(["A", "B", "base1", "base2"], {
        "energy in mask": np.stack([u + 0.3, u + 0.1, u, u + 0.1], 1),     # higher is better; B ties base2
        "deletion AUC": np.stack([u + 0.2, u - 0.1, u, u - 0.05], 1),     # lower is better
        "pointing game": np.stack([a, a.copy(), u, u], 1),                # A and B tie; so do the baselines
    })


@pytest.mark.parametrize("seed", [0, 7])
def test_against_baselines_by_hand(seed):
    table = against_baselines(_board(), ["base1", "base2"], ["energy in mask", "deletion AUC", "pointing game"],
                              n_boot=200, seed=seed)
    assert list(table.index) == ["energy in mask", "deletion AUC", "pointing game"]
    assert table.loc["energy in mask"].tolist() == ["base2 (0.40)", "A", "A"]      # B only ties base2
    assert table.loc["deletion AUC"].tolist() == ["base2 (0.25)", "B", "B"]        # the lower mean is stronger
    assert table.loc["pointing game"].tolist() == ["base1 (0.30)", "A, B", "A, B"]  # tied baselines: the first
    one = against_baselines(_board(), ["base1"], ["energy in mask"], n_boot=200, seed=seed)
    assert one.loc["energy in mask"].tolist() == ["base1 (0.30)", "A, B, base2", "A"]   # base2 is now a method
    scores = _board()
    scores.values["energy in mask"][:, 0] = scores.values["energy in mask"][:, 3]  # A no better than base2
    assert against_baselines(scores, ["base1", "base2"], ["energy in mask"], n_boot=200, seed=seed
                             ).loc["energy in mask", "methods that beat every baseline"] == "none"


def test_against_baselines_rejects_bad_input():
    with pytest.raises(ValueError, match=r"baselines: expected names among the scored maps, missing \['nope'\]"):
        against_baselines(_board(), ["base1", "nope"], ["energy in mask"], n_boot=200)
    with pytest.raises(ValueError, match="baselines: expected names among the scored maps, missing all"):
        against_baselines(_board(), [], ["energy in mask"], n_boot=200)

# ---------------------------------------------------------------- sanity: the fully randomised copy (notebook 04)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Conv2d(4, 4, 3, padding=1))
        self.classifier = nn.Linear(4, 2)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def _trained_net() -> _Net:
    torch.manual_seed(0)
    net = _Net()
    with torch.no_grad():
        net.features[1].running_mean.uniform_(-1, 1), net.features[1].running_var.uniform_(0.5, 2)
    return net.train()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_randomised_copy_draws_the_documented_weights_in_order():
    """Blocks from the top (classifier, features.3, features.1, features.0), each from one generator seeded by
    ``seed``: conv/linear weights U(-1, 1) x sqrt(6 / fan_in), biases U(-1, 1) / sqrt(fan_in); batch-norm
    weight 1 + 0.1 N(0, 1), bias 0.1 N(0, 1), running mean 0 and variance 1."""
    net = _trained_net()
    before = _state(net)
    assert randomization_order(net) == ["classifier", "features.3", "features.1", "features.0"]
    shadow = randomised_copy(net, seed=3)
    g = torch.Generator().manual_seed(3)
    uniform = lambda shape: torch.rand(shape, generator=g) * 2 - 1  # noqa: E731
    expected = {}
    for name, fan_in in (("classifier", 4), ("features.3", 36)):
        weight = net.get_submodule(name).weight
        expected[f"{name}.weight"] = uniform(weight.shape) * (1 / np.sqrt(fan_in)) * np.sqrt(6)
        expected[f"{name}.bias"] = uniform(weight.shape[:1]) * (1 / np.sqrt(fan_in))
    expected["features.1.weight"] = 1 + 0.1 * torch.randn(4, generator=g)
    expected["features.1.bias"] = 0.1 * torch.randn(4, generator=g)
    expected["features.1.running_mean"], expected["features.1.running_var"] = torch.zeros(4), torch.ones(4)
    expected["features.0.weight"] = uniform((4, 1, 3, 3)) * (1 / np.sqrt(9)) * np.sqrt(6)
    expected["features.0.bias"] = uniform((4,)) * (1 / np.sqrt(9))
    state = shadow.state_dict()
    for key, value in expected.items():
        assert torch.allclose(state[key], value, atol=1e-7), key
    assert not shadow.training and net.training                     # the copy is in eval mode; the model as it was
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())     # the trained model is untouched


def test_randomised_copy_is_the_last_network_of_the_cascade():
    """The same random stream as randomisation_test (cascading): its last step explains this very network."""
    net, x = _trained_net(), torch.rand(2, 1, 8, 8)
    seen = []

    def explain(model, images):
        seen.append(_state(model))
        return model.features(images).sum(1)

    randomisation_test(net, x, {"maps": explain}, seed=5)
    copy_state = randomised_copy(net, seed=5).state_dict()
    assert all(torch.equal(copy_state[k], v) for k, v in seen[-1].items())
    assert not all(torch.equal(copy_state[k], v) for k, v in randomised_copy(net, seed=6).state_dict().items())


def test_randomised_copy_with_a_partial_order_and_bad_names():
    net = _trained_net()
    top = randomised_copy(net, order=["classifier"], seed=0)
    trained, state = net.state_dict(), top.state_dict()
    assert not torch.equal(state["classifier.weight"], trained["classifier.weight"])
    assert all(torch.equal(state[k], trained[k]) for k in trained if not k.startswith("classifier"))
    assert torch.equal(randomised_copy(copy.deepcopy(net), order=["classifier"], seed=0).classifier.weight,
                       top.classifier.weight)                        # deterministic by seed
    with pytest.raises(ValueError, match=r"order: no submodules named \['head', 'features.9'\]"):
        randomised_copy(net, order=["classifier", "head", "features.9"])
