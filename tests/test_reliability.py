"""Reliability: the library as a careless or hostile user would try it (issue 17).

One test (parametrised per family) per case of docs/reliability.md; each asserts a clear error naming
the argument, or the correct behaviour. Tiny models and fixture trees keep the whole file fast.
"""
import copy
import gzip
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

from medxai_lib.data import HAM10000, ISIC2018Task3, KaggleDR, MedMNIST, MuraDataset
from medxai_lib.data.lesions import Descriptor, DescriptorBank, gram
from medxai_lib.data.real.common import read_grey, read_image
from medxai_lib.evaluate import (auprc, binary_metrics, deletion_insertion, energy_in_mask, localisation_summary,
                                 pointing_game, study_level, topk_iou)
from medxai_lib.evaluate.studies.scoreboard import method_report
from medxai_lib.explain import (ablation_cam, cam, eigen_cam, grad_cam, grad_cam_pp, hires_cam, layer_cam, normalize,
                                score_cam, xgrad_cam)
from medxai_lib.explain.capture import check_images, eval_mode, forward_with_capture, resolve_classes, resolve_layer
from medxai_lib.explain.gradients import (deconvnet, gradient_shap, guided_backprop, input_x_gradient,
                                          integrated_gradients, saliency, smooth_grad)
from medxai_lib.explain.perturbation import occlusion, rise, window_masks


# ---- small models ------------------------------------------------------------------------------
class Tiny(nn.Module):
    """CAM-ready: logits = classifier(avgpool(features(x)))."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


class Returns(nn.Module):
    """Wraps Tiny and returns its logits inside a tuple or a dict."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net, self.kind = Tiny(), kind

    def forward(self, x: torch.Tensor):
        out = self.net(x)
        return (out, out.detach()) if self.kind == "tuple" else {"logits": out}


def _tiny(seed: int = 0, **kwargs) -> Tiny:
    torch.manual_seed(seed)
    model = Tiny(**kwargs).eval()
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-0.2, 0.2)
        model.classifier.weight.normal_()
    return model


def _x(n: int = 2, channels: int = 1, side: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=5).eval()


# ---- 1. path traversal -------------------------------------------------------------------------
def _png(path: Path, array: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 10), 128, np.uint8) if array is None else array).save(path)


def _jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 10, 3), 100, np.uint8)).save(path)


def _mura(root: Path, image_row: str | None = None, study_row: str | None = None) -> Path:
    base = root / "MURA-v1.1"
    study = "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/"
    _png(base / "train/XR_WRIST/patient00001/study1_positive/image1.png")
    (base / "train_image_paths.csv").write_text(f"{study}image1.png\n" + (f"{image_row}\n" if image_row else ""))
    (base / "train_labeled_studies.csv").write_text(f"{study},1\n" + (f"{study_row},0\n" if study_row else ""))
    return root


def _ham(root: Path, image_id: str = "ISIC_1", header: str = "lesion_id,image_id,dx,dx_type,age,sex,localization",
         bom: bool = False) -> Path:
    _jpg(root / "HAM10000_images_part_1" / "ISIC_1.jpg")
    text = f"{header}\nHAM_1,ISIC_1,mel,histo,50,male,back\nHAM_2,{image_id},nv,histo,50,male,back\n"
    (root / "HAM10000_metadata.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return root


def _isic(root: Path, image: str = "ISIC_1", extra: str = "") -> Path:
    _jpg(root / "ISIC2018_Task3_Training_Input" / "ISIC_1.jpg")
    (root / "ISIC2018_Task3_Training_GroundTruth.csv").write_text(
        "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,0,1,0,0,0,0,0\n"
        f"{image},1,0,0,0,0,0,0\n{extra}")
    return root


def _kaggle(root: Path, image: str = "1_left") -> Path:
    _jpg(root / "train" / "1_left.jpeg")
    (root / "trainLabels.csv").write_text(f"image,level\n1_left,0\n{image},2\n")
    return root


def _traversal_cases(root: Path, outside: Path, absolute: bool):
    """(loader call, CSV line expected in the message) for every loader, with a row leading to ``outside``
    (``../`` climbing from the folder the row is read against, or an absolute path)."""
    def rel(folder: Path, target: Path) -> str:
        return str(target) if absolute else os.path.relpath(target, folder)

    mura = root / "m1" / "MURA-v1.1"
    stem = outside.with_suffix("")
    return {
        "MURA image row": (lambda: MuraDataset(_mura(root / "m1", image_row=rel(mura, outside)), "train", size=16), 2),
        "MURA study row": (lambda: MuraDataset(_mura(root / "m2", study_row=rel(root / "m2" / "MURA-v1.1",
                                                                                 outside.parent)), "train", size=16), 2),
        "HAM10000 image_id": (lambda: HAM10000(_ham(root / "h", rel(root / "h" / "HAM10000_images_part_1", stem))), 3),
        "ISIC 2018 image": (lambda: ISIC2018Task3(_isic(root / "i", rel(root / "i" / "ISIC2018_Task3_Training_Input",
                                                                         stem))), 3),
        "Kaggle DR image": (lambda: KaggleDR(_kaggle(root / "k", rel(root / "k" / "train", stem))), 3),
    }


@pytest.mark.parametrize("absolute", [False, True], ids=["dotdot", "absolute"])
@pytest.mark.parametrize("loader", ["MURA image row", "MURA study row", "HAM10000 image_id", "ISIC 2018 image",
                                    "Kaggle DR image"])
def test_csv_paths_cannot_escape_the_dataset_root(tmp_path, loader, absolute):
    outside = tmp_path / "secret.png"
    call, line = _traversal_cases(tmp_path / "data", outside, absolute)[loader]
    messages = []
    for exists in (True, False):        # the message must not reveal whether the outside file exists
        if exists:
            _png(outside)
            for suffix in (".jpg", ".jpeg"):
                _jpg(outside.with_suffix(suffix))
        else:
            for suffix in (".png", ".jpg", ".jpeg"):
                outside.with_suffix(suffix).unlink()
        with pytest.raises(ValueError, match=rf"line {line}: path .* escapes the dataset root") as info:
            call()
        messages.append(str(info.value))
    assert messages[0] == messages[1]


# ---- 2. decompression bombs ----------------------------------------------------------------------
def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A ~60-byte PNG that declares width x height (the decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [9600, 20000], ids=["below-pillow-limit", "above-pillow-limit"])
@pytest.mark.parametrize("reader", ["read_image", "read_grey", "MURA"])
def test_oversized_images_are_refused_before_decoding_naming_the_file(tmp_path, side, reader):
    if reader == "MURA":
        root = _mura(tmp_path)
        victim = root / "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png"
        _png_header_only(victim, side, side)
        call = lambda: MuraDataset(root, "train", size=16)[0]      # noqa: E731
    else:
        victim = _png_header_only(tmp_path / "bomb.png", side, side)
        call = (lambda: read_image(victim, "RGB")) if reader == "read_image" else (lambda: read_grey(victim))  # noqa: E731
    assert victim.stat().st_size < 120
    with pytest.raises(ValueError, match=rf"{victim.name}.*(exceeds the cap|pixel cap)"):
        call()


def test_gzipped_image_cannot_decompress_past_the_cap(tmp_path):
    raw = tmp_path / "im0001.ppm"
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(raw)
    gz = tmp_path / "im0001.ppm.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    assert read_image(gz, "RGB").shape == (200, 200, 3)
    with pytest.raises(ValueError, match="im0001.ppm.gz: decompresses to more than"):
        read_image(gz, "RGB", max_pixels=100)


# ---- 3. in-place operations after the hooked layer ----------------------------------------------
def _resnet_block_by_hand(r, x, classes):
    """Grad-CAM at layer4.1.bn2 written out: the BatchNorm's true output A, logits = fc(pool(relu(A + id)))."""
    with torch.no_grad():
        h = r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))))
        identity = r.layer4[0](h)
        block = r.layer4[1]
        a = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(identity))))).clone()
    a.requires_grad_(True)
    logits = r.fc(torch.flatten(r.avgpool(F.relu(a + identity)), 1))
    maps = []
    for c in classes:
        (g,) = torch.autograd.grad(logits[:, c].sum(), a, retain_graph=True)
        maps.append(torch.relu(torch.einsum("bk,bkhw->bhw", g.mean((2, 3)), a.detach())))
    return a.detach(), torch.stack(maps, 1)


def test_grad_cam_explains_the_hooked_layers_own_output_despite_inplace_ops(resnet):
    x = _x(2, 3, 64, seed=1)
    true_output, expected = _resnet_block_by_hand(resnet, x, [1, 3])
    _, acts = forward_with_capture(resnet, x, [resolve_layer(resnet, "layer4.1.bn2")])
    assert torch.allclose(acts["layer4.1.bn2"].detach(), true_output, atol=1e-6)
    ours = grad_cam(resnet, x, "layer4.1.bn2", classes=[1, 3])
    assert torch.allclose(ours, expected, atol=1e-6)
    assert (ours - grad_cam(resnet, x, "layer4", classes=[1, 3])).abs().max() > 1e-2


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_guided_backprop_handles_inplace_relus_and_matches_captum(resnet, method):
    from captum.attr import Deconvolution, GuidedBackprop
    x = _x(2, 3, 64, seed=2)
    out_of_place = copy.deepcopy(resnet)
    for m in out_of_place.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    ours = (guided_backprop if method == "guided_backprop" else deconvnet)(resnet, x, classes=[2])[:, 0]
    reference = (GuidedBackprop if method == "guided_backprop" else Deconvolution)(out_of_place).attribute(x, target=2)
    assert ours.abs().max() > 0 and torch.allclose(ours, reference, atol=1e-6)
    assert all(m.inplace for m in resnet.modules() if isinstance(m, nn.ReLU))     # flags restored


# ---- 4. NaN / inf input and NaN maps --------------------------------------------------------------
CAM_METHODS = {
    "cam": lambda m, x: cam(m, x),
    "grad_cam": lambda m, x: grad_cam(m, x, "features"),
    "grad_cam_pp": lambda m, x: grad_cam_pp(m, x, "features"),
    "xgrad_cam": lambda m, x: xgrad_cam(m, x, "features"),
    "hires_cam": lambda m, x: hires_cam(m, x, "features"),
    "layer_cam": lambda m, x: layer_cam(m, x, "features"),
    "score_cam": lambda m, x: score_cam(m, x, "features", chunk_size=8),
    "ablation_cam": lambda m, x: ablation_cam(m, x, "features", chunk_size=8),
    "eigen_cam": lambda m, x: eigen_cam(m, x, "features"),
}


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_cam_family_refuses_non_finite_images(method, value):
    x = _x(2)
    x[1, 0, 3, 4] = value
    with pytest.raises(ValueError, match=r"images: contains NaN or infinite values \(image\(s\) \[1\]"):
        CAM_METHODS[method](_tiny(), x)


MAP_METRICS = {
    "pointing_game": lambda maps, masks, x, m: pointing_game(maps, masks),
    "energy_in_mask": lambda maps, masks, x, m: energy_in_mask(maps, masks),
    "topk_iou": lambda maps, masks, x, m: topk_iou(maps, masks),
    "auprc": lambda maps, masks, x, m: auprc(maps, masks),
    "normalize": lambda maps, masks, x, m: normalize(maps),
    "deletion": lambda maps, masks, x, m: deletion_insertion(m, x, maps[:, 0], torch.tensor([0, 1])),
    "localisation_summary": lambda maps, masks, x, m: localisation_summary({"a": maps}, masks),
}


@pytest.mark.parametrize("metric", sorted(MAP_METRICS))
def test_metrics_refuse_nan_maps(metric):
    maps = torch.rand(2, 1, 16, 16)
    maps[0, 0, 2, 2] = float("nan")
    masks = torch.zeros(2, 1, 16, 16)
    masks[:, :, 4:8, 4:8] = 1
    with pytest.raises(ValueError, match="maps: contains NaN or infinite values"):
        MAP_METRICS[metric](maps, masks, _x(2), _tiny())


# ---- 5. 16-bit images -------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [12, 16])
def test_16_bit_images_are_scaled_by_bit_depth_not_clipped(tmp_path, bits):
    top = 2 ** bits - 1
    values = np.linspace(0, top, 64).round().astype(np.uint16).reshape(8, 8)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    grey = read_grey(path)
    assert np.allclose(grey, values / top, atol=1e-6)
    as_uint8 = read_image(path, "L")
    assert np.array_equal(as_uint8, np.round(values / top * 255).astype(np.uint8))
    assert (as_uint8 == 255).mean() < 0.05                             # the clipped decoder made 92% white
    assert np.array_equal(read_image(path, "RGB"), np.repeat(as_uint8[..., None], 3, 2))
    root = _mura(tmp_path / "mura")
    Image.fromarray(values).save(root / "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png")
    assert torch.allclose(MuraDataset(root, "train", size=16).load_grey(0)[0], torch.from_numpy(values / top).float())


# ---- 6. non-integer targets ---------------------------------------------------------------------
@pytest.mark.parametrize("classes", [torch.tensor([0.7, 1.9]), torch.tensor([True, False]),
                                     torch.tensor([1.0, 2.0])], ids=["float", "bool", "whole-float"])
@pytest.mark.parametrize("method", ["resolve_classes", "grad_cam", "saliency", "occlusion"])
def test_non_integer_classes_are_refused(method, classes):
    model, x = _tiny(), _x(2)
    call = {"resolve_classes": lambda: resolve_classes(classes, torch.zeros(2, 3)),
            "grad_cam": lambda: grad_cam(model, x, "features", classes),
            "saliency": lambda: saliency(model, x, classes),
            "occlusion": lambda: occlusion(model, x, classes, window=8, stride=8)}[method]
    with pytest.raises(TypeError, match=r"classes: expected an integer tensor .*got dtype torch\.(float32|bool)"):
        call()


def test_numpy_integer_classes_are_accepted():
    logits = torch.zeros(2, 3)
    assert resolve_classes(np.int64(2), logits).tolist() == [[2], [2]]
    assert resolve_classes([np.int64(0), 1], logits).tolist() == [[0, 1], [0, 1]]
    assert resolve_classes(np.array([2, 0]), logits).tolist() == [[2], [0]]
    model, x = _tiny(), _x(2)
    assert torch.equal(grad_cam(model, x, "features", np.int64(1)), grad_cam(model, x, "features", 1))


@pytest.mark.parametrize("targets, error, match", [
    (torch.tensor([-1, 0]), ValueError, r"targets: \[-1\] out of range .*negative indices are not wrapped"),
    (torch.tensor([0.9, 1.0]), TypeError, r"targets: expected integer class indices, got dtype torch.float32"),
    ([0.9, 1.0], TypeError, r"targets: expected integer class indices, got dtype torch.float64"),
    (torch.tensor([True, False]), TypeError, r"targets: expected integer class indices, got dtype torch.bool"),
    (torch.tensor([0, 3]), ValueError, r"targets: \[3\] out of range"),
], ids=["negative", "float", "float-list", "bool", "too-large"])
def test_deletion_targets_must_be_valid_class_indices(targets, error, match):
    model, x = _tiny(), _x(2)
    with pytest.raises(error, match=match):
        deletion_insertion(model, x, torch.rand(2, 16, 16), targets)


@pytest.mark.parametrize("labels", [[0.7, 1, 0], [2, 1, 0], [np.nan, 1, 0], [-1, 1, 0]],
                         ids=["0.7", "2", "nan", "-1"])
def test_binary_metrics_refuse_non_binary_labels(labels):
    probs = np.array([0.2, 0.8, 0.4])
    with pytest.raises(ValueError, match="labels: expected 0/1"):
        binary_metrics(probs, np.array(labels))
    with pytest.raises(ValueError, match="labels: expected 0/1"):
        study_level(probs, np.array(labels), ["a", "b", "c"])
    assert binary_metrics(probs, np.array([0.0, 1.0, 0.0]))["accuracy"] == 1.0      # whole floats are fine
    with pytest.raises(ValueError, match="probs: contains NaN"):
        binary_metrics(np.array([0.2, np.nan, 0.4]), np.array([0, 1, 0]))


@pytest.mark.parametrize("labels", [[[0], [-1], [1]], [[0], [-3], [1]], [[0.0], [1.9], [1.0]], [[0.0], [np.nan], [1.0]]],
                         ids=["-1", "-3", "1.9", "nan"])
def test_medmnist_refuses_non_integer_or_negative_labels(tmp_path, labels):
    path = tmp_path / "dermamnist.npz"
    np.savez(path, train_images=np.zeros((3, 8, 8), np.uint8), train_labels=np.array(labels))
    with pytest.raises(ValueError, match=r"dermamnist.npz: train_labels must be non-negative integers.*row\(s\) \[1\]"):
        MedMNIST(path, "train")
    np.savez(path, train_images=np.zeros((3, 8, 8), np.uint8), train_labels=np.array([[0.0], [2.0], [1.0]]))
    assert MedMNIST(path, "train").labels.tolist() == [0, 2, 1]


# ---- 7. eval_mode restores every submodule's own flag ----------------------------------------------
def _flags(model):
    return {name: m.training for name, m in model.named_modules()}


@pytest.mark.parametrize("use", ["eval_mode", "grad_cam", "occlusion", "saliency", "cam"])
@pytest.mark.parametrize("top", ["train", "eval"])
def test_eval_mode_restores_each_submodules_training_flag(use, top):
    model = _tiny()
    model.train(top == "train")
    model.features[1].train(top != "train")           # a BatchNorm frozen (or unfrozen) by the user
    before = _flags(model)
    x = _x(2)
    if use == "eval_mode":
        with eval_mode(model):
            assert not any(_flags(model).values())
    else:
        {"grad_cam": lambda: grad_cam(model, x, "features"), "occlusion": lambda: occlusion(model, x, window=8, stride=8),
         "saliency": lambda: saliency(model, x), "cam": lambda: cam(model, x)}[use]()
    assert _flags(model) == before


# ---- 8. DescriptorBank.load validates its metadata --------------------------------------------------
def _descriptor(box=(4, 4, 8, 7), kind="haemorrhage", size=32, seed=0):
    rng = np.random.default_rng(seed)
    h, w = box[3] - box[1], box[2] - box[0]
    feats = {"conv1b": rng.random((4, 2, 2)).astype(np.float32)}
    grams = {k: gram(torch.from_numpy(v)).numpy() for k, v in feats.items()}
    return Descriptor(box, size, np.ones((h, w), bool), rng.random((h, w)).astype(np.float32), feats, grams, kind, "t")


def _tamper(path: Path, meta_edit=None, arrays_edit=None, raw_meta: str | None = None) -> Path:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    if meta_edit:
        meta_edit(meta)
    if arrays_edit:
        arrays_edit(arrays)
    arrays["meta"] = np.array(raw_meta if raw_meta is not None else json.dumps(meta))
    np.savez(path, **arrays)
    return path


def _set(index, key, value):
    return lambda meta: meta["descriptors"][index].__setitem__(key, value)


BANK_CORRUPTIONS = {
    "box-string": (dict(meta_edit=_set(0, "box", "abcd")), "box must be four ints"),
    "box-negative": (dict(meta_edit=_set(0, "box", [-5, 3, 900])), "box must be four ints"),
    "box-outside": (dict(meta_edit=_set(0, "box", [-5, 3, 900, 10])), r"box \[-5, 3, 900, 10\] must satisfy"),
    "box-vs-mask": (dict(meta_edit=_set(0, "box", [4, 4, 10, 10])), r"mask must be a boolean \(6, 6\) array"),
    "size-negative": (dict(meta_edit=_set(0, "image_size", -32)), "image_size must be a positive int"),
    "size-mixed": (dict(meta_edit=_set(1, "image_size", 64)), r"mixes image sizes \[32, 64\]"),
    "kind-unknown": (dict(meta_edit=_set(0, "kind", "drusen")), "unknown kind 'drusen'"),
    "mask-3d-float": (dict(arrays_edit=lambda a: a.__setitem__("0/mask", np.ones((3, 4, 3), np.float32))),
                      "mask must be a boolean"),
    "json-malformed": (dict(raw_meta="{not json"), "malformed metadata JSON"),
    "key-missing": (dict(meta_edit=lambda m: m["descriptors"][0].pop("layers")), r"metadata misses \['layers'\]"),
    "array-missing": (dict(arrays_edit=lambda a: a.pop("1/activation")), r"descriptor 1: missing array '1/activation'"),
    "gram-shape": (dict(arrays_edit=lambda a: a.__setitem__("0/grams/conv1b", np.ones((4, 3), np.float32))),
                   r"Gram matrix of 'conv1b' must be \(4, 4\)"),
}


@pytest.mark.parametrize("case", sorted(BANK_CORRUPTIONS))
def test_descriptor_bank_load_checks_its_metadata(tmp_path, case):
    bank = DescriptorBank([_descriptor(), _descriptor((10, 10, 20, 20), "cotton_wool", seed=1)])
    path = bank.save(tmp_path / "bank.npz")
    assert len(DescriptorBank.load(path)) == 2
    edits, match = BANK_CORRUPTIONS[case]
    _tamper(path, **edits)
    with pytest.raises(ValueError, match=match) as info:
        DescriptorBank.load(path)
    assert "bank.npz" in str(info.value)


# ---- 9. empty evidence masks: undefined, left out, counted ----------------------------------------
@pytest.mark.parametrize("metric", ["pointing_game", "energy_in_mask", "topk_iou", "auprc"])
def test_empty_masks_are_undefined_not_misses(metric):
    fn = {"pointing_game": pointing_game, "energy_in_mask": energy_in_mask, "topk_iou": topk_iou, "auprc": auprc}[metric]
    maps = torch.zeros(2, 1, 8, 8)
    maps[:, 0, 2, 2] = 1.0
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, 0, 1:4, 1:4] = 1                         # image 0 has evidence; image 1 has none
    out = fn(maps, masks)
    assert torch.isnan(out[1]).all() and not torch.isnan(out[0]).any() and out[0, 0] > 0


def test_method_report_leaves_empty_masks_out_and_counts_them():
    model, x = _tiny(), _x(3)
    masks = torch.zeros(3, 1, 16, 16)
    masks[0, :, 2:8, 2:8] = 1
    masks[2, :, 8:14, 8:14] = 1
    targets = torch.tensor([0, 1, 2])
    table, heat = method_report(model, x, masks, targets, {"grad_cam": {"layer": "features"}}, n_steps=4)
    assert table["images left out (empty mask)"].tolist() == [1, 1]
    kept = [0, 2]
    expected = pointing_game(heat["grad_cam"][kept, None], masks[kept]).mean().item()
    assert table.loc["grad_cam", "pointing game"] == pytest.approx(expected)
    assert table.loc["grad_cam", "energy in mask"] == pytest.approx(
        energy_in_mask(heat["grad_cam"][kept, None], masks[kept]).mean().item())
    full, _ = method_report(model, x[kept], masks[kept], targets[kept], {"grad_cam": {"layer": "features"}}, n_steps=4)
    assert "images left out (empty mask)" not in full.columns
    summary = localisation_summary({"grad_cam": heat["grad_cam"][:, None]}, masks)
    assert summary.loc["grad_cam", "images left out (empty mask)"] == 1
    assert summary.loc["grad_cam", "pointing game"] == pytest.approx(expected)


# ---- 10. unclear errors in common workflows ---------------------------------------------------------
GRAD_METHODS = {
    "grad_cam": lambda m, x: grad_cam(m, x, "features"),
    "grad_cam_pp": lambda m, x: grad_cam_pp(m, x, "features"),
    "layer_cam": lambda m, x: layer_cam(m, x, "features"),
    "saliency": lambda m, x: saliency(m, x),
    "input_x_gradient": lambda m, x: input_x_gradient(m, x),
    "smooth_grad": lambda m, x: smooth_grad(m, x, n_samples=2),
    "guided_backprop": lambda m, x: guided_backprop(m, x),
    "integrated_gradients": lambda m, x: integrated_gradients(m, x, n_steps=4),
    "score_cam": lambda m, x: score_cam(m, x, "features", chunk_size=8),
    "cam": lambda m, x: cam(m, x),
}


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("method", sorted(GRAD_METHODS))
def test_methods_work_under_no_grad_and_inference_mode(method, context):
    model, x = _tiny(), _x(2)
    expected = GRAD_METHODS[method](model, x)
    with (torch.no_grad() if context == "no_grad" else torch.inference_mode()):
        x_ctx = x.clone()
        got = GRAD_METHODS[method](model, x_ctx)
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
@pytest.mark.parametrize("method", ["grad_cam", "saliency", "occlusion", "score_cam"])
def test_image_dtype_must_match_the_model(method, dtype):
    model, x = _tiny(), _x(2).to(dtype)
    call = {"grad_cam": lambda: grad_cam(model, x, "features"), "saliency": lambda: saliency(model, x),
            "occlusion": lambda: occlusion(model, x, window=8, stride=8),
            "score_cam": lambda: score_cam(model, x, "features")}[method]
    with pytest.raises(TypeError, match=rf"images: dtype {dtype} differs from the model's parameters \(torch.float32\)"):
        call()


@pytest.mark.parametrize("kind", ["tuple", "dict"])
@pytest.mark.parametrize("method", ["grad_cam", "saliency", "occlusion", "integrated_gradients", "deletion"])
def test_models_returning_tuples_or_dicts_get_a_clear_error(method, kind):
    model, x = Returns(kind).eval(), _x(2)
    call = {"grad_cam": lambda: grad_cam(model, x, "net.features"), "saliency": lambda: saliency(model, x),
            "occlusion": lambda: occlusion(model, x, window=8, stride=8),
            "integrated_gradients": lambda: integrated_gradients(model, x, n_steps=2),
            "deletion": lambda: deletion_insertion(model, x, torch.rand(2, 16, 16), torch.tensor([0, 1]))}[method]
    with pytest.raises(TypeError, match=rf"model: expected the forward pass to return a \(B, num_classes\) tensor .*got {kind}"):
        call()


class HeadFirst(nn.Module):
    """Registers the head's conv before the stem (valid: the stem takes 1 channel)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(8, 3, 1)
        self.stem = nn.Conv2d(1, 8, 3, padding=1)

    def forward(self, x):
        return self.head(torch.relu(self.stem(x))).mean((2, 3))


class Lazy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.LazyConv2d(6, 3, padding=1), nn.ReLU())
        self.classifier = nn.LazyLinear(3)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


@pytest.mark.parametrize("arch", ["registered-out-of-order", "lazy"])
def test_check_images_finds_the_stem_that_actually_runs(arch):
    torch.manual_seed(0)
    model = HeadFirst() if arch == "registered-out-of-order" else Lazy()
    x = _x(2, 1)
    state = torch.random.get_rng_state()
    check_images(model, x)                                        # valid input: no error ...
    assert torch.equal(torch.random.get_rng_state(), state)        # ... and no lazy initialisation happened
    if arch == "lazy":
        model(x)                                                  # initialise, then explain
    layer = "stem" if arch == "registered-out-of-order" else "features"
    assert grad_cam(model, x, layer).shape[:2] == (2, 3)
    if arch == "registered-out-of-order":
        with pytest.raises(ValueError, match=r"images: the model's first conv \('stem'\) expects 1 channels, got 3"):
            check_images(model, _x(2, 3))


def test_numpy_integer_window_and_stride_are_accepted():
    model, x = _tiny(), _x(1)
    assert torch.equal(occlusion(model, x, window=np.int64(8), stride=np.int32(4)), occlusion(model, x, window=8, stride=4))
    assert window_masks(16, 16, np.int64(8), np.int64(8)).shape == (4, 1, 16, 16)
    assert rise(model, x, n_masks=np.int64(4), grid=np.int64(4)).shape == (1, 3, 1, 16, 16)
    with pytest.raises(ValueError, match="window, stride"):
        window_masks(16, 16, True, 8)


def test_method_report_wants_a_dict_of_methods():
    with pytest.raises(TypeError, match=r"methods: expected a dict of method name -> keyword arguments"):
        method_report(_tiny(), _x(2), torch.ones(2, 1, 16, 16), torch.tensor([0, 1]), ["grad_cam"])


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"P5\n6", "truncated"],
                         ids=["zero-size", "cut-signature", "cut-ppm-header", "truncated"])
@pytest.mark.parametrize("reader", ["read_image", "MURA"])
def test_broken_image_files_are_named(tmp_path, content, reader):
    root = _mura(tmp_path)
    victim = root / "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png"
    if content == "truncated":
        _png(victim, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
        victim.write_bytes(victim.read_bytes()[:200])
    else:
        victim.write_bytes(content)
    call = (lambda: read_image(victim, "RGB")) if reader == "read_image" else (lambda: MuraDataset(root, "train")[0])  # noqa: E731
    with pytest.raises(ValueError, match=r"cannot read image .*study1_positive/image1.png"):
        call()


def test_csv_quirks_header_rows_bom_and_short_rows(tmp_path):
    root = _mura(tmp_path / "m")
    base = root / "MURA-v1.1"
    plain = MuraDataset(root, "train", size=16)
    for name, header in (("train_image_paths.csv", "Path\n"), ("train_labeled_studies.csv", "Path,Label\n")):
        (base / name).write_text(header + (base / name).read_text())
    with_header = MuraDataset(root, "train", size=16)
    assert with_header.paths == plain.paths and with_header.labels.tolist() == plain.labels.tolist()
    ham = _ham(tmp_path / "h", image_id="ISIC_2", bom=True)          # a UTF-8 byte-order mark before the header
    _jpg(ham / "HAM10000_images_part_2" / "ISIC_2.jpg")
    assert [r["image_id"] for r in HAM10000(ham).records] == ["ISIC_1", "ISIC_2"]
    isic = _isic(tmp_path / "i", extra="ISIC_1,0,1\n")
    with pytest.raises(ValueError, match=r"GroundTruth.csv line 4: expected 8 fields .* short row"):
        ISIC2018Task3(isic)


# ---- 11. smaller silent defects (library part) ---------------------------------------------------
def test_gradient_shap_leaves_the_global_rng_alone():
    model, x = _tiny(), _x(2)
    torch.manual_seed(123)
    np.random.seed(123)
    state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first = gradient_shap(model, x, classes=0, n_samples=4, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))
    assert torch.equal(first, gradient_shap(model, x, classes=0, n_samples=4, seed=5))    # the seed decides
    assert not torch.equal(first, gradient_shap(model, x, classes=0, n_samples=4, seed=6))


def test_mura_body_parts_as_a_string_and_unknown_parts(tmp_path):
    root = _mura(tmp_path)
    assert len(MuraDataset(root, "train", size=16, body_parts="WRIST")) == 1
    assert len(MuraDataset(root, "train", size=16, body_parts="XR_WRIST")) == 1
    with pytest.raises(ValueError, match=r"body_parts: unknown \['WRISTS'\]"):
        MuraDataset(root, "train", body_parts=("WRISTS",))
    with pytest.raises(ValueError, match=r"train_image_paths.csv: no images of body parts \['XR_HAND'\]"):
        MuraDataset(root, "train", body_parts="HAND")


@pytest.mark.parametrize("loader", ["MURA", "HAM10000", "ISIC 2018", "Kaggle DR", "MedMNIST"])
def test_empty_indexes_are_errors_not_empty_datasets(tmp_path, loader):
    if loader == "MURA":
        root = _mura(tmp_path)
        (root / "MURA-v1.1/train_image_paths.csv").write_text("")
        call, match = (lambda: MuraDataset(root, "train")), "train_image_paths.csv: lists nothing"
    elif loader == "HAM10000":
        root = _ham(tmp_path)
        (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n")
        call, match = (lambda: HAM10000(root)), "HAM10000_metadata.csv: no data rows"
    elif loader == "ISIC 2018":
        root = _isic(tmp_path)
        (root / "ISIC2018_Task3_Training_GroundTruth.csv").write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n")
        call, match = (lambda: ISIC2018Task3(root)), "GroundTruth.csv: no data rows"
    elif loader == "Kaggle DR":
        root = _kaggle(tmp_path)
        (root / "trainLabels.csv").write_text("image,level\n")
        call, match = (lambda: KaggleDR(root)), "trainLabels.csv: no data rows"
    else:
        np.savez(tmp_path / "x.npz", train_images=np.zeros((0, 8, 8), np.uint8), train_labels=np.zeros((0, 1)))
        call, match = (lambda: MedMNIST(tmp_path / "x.npz")), r"x.npz: train_images is empty"
    with pytest.raises(ValueError, match=match):
        call()


# ---- 12. silent data defects ---------------------------------------------------------------------
def test_mura_image_listed_twice_is_an_error_naming_the_row(tmp_path):
    image = "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png"
    root = _mura(tmp_path, image_row=image)                           # line 2 repeats line 1
    with pytest.raises(ValueError, match=r"train_image_paths.csv line 2: image '.*image1.png' is listed twice "
                                         r"\(first on line 1\)"):
        MuraDataset(root, "train", size=16)
    (root / "MURA-v1.1/train_image_paths.csv").write_text(f"{image}\n")
    assert len(MuraDataset(root, "train", size=16)) == 1            # listed once: one image


def test_mura_study_with_two_labels_is_an_error_naming_the_row(tmp_path):
    study = "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/"
    root = _mura(tmp_path, study_row=study)                           # line 2: the same study, label 0
    with pytest.raises(ValueError, match=r"train_labeled_studies.csv line 2: study '.*study1_positive/' is "
                                         r"labelled 0 here and 1 on line 1"):
        MuraDataset(root, "train", size=16)
    (root / "MURA-v1.1/train_labeled_studies.csv").write_text(f"{study},1\n{study},1\n")
    assert MuraDataset(root, "train", size=16).labels.tolist() == [1]   # a repeated, agreeing row is harmless


def test_data_root_that_is_not_a_folder_is_named(tmp_path, monkeypatch):
    from medxai_lib.data import DATA_ENV, resolve_data_root
    archive = tmp_path / "MURA-v1.1.zip"
    archive.write_bytes(b"PK")
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(NotADirectoryError, match=r"data_root: .*MURA-v1.1.zip is not a folder"):
        resolve_data_root(archive)
    with pytest.raises(FileNotFoundError, match=r"data_root: .*missing does not exist"):
        resolve_data_root(tmp_path / "missing")
    monkeypatch.setenv(DATA_ENV, str(archive))
    with pytest.raises(NotADirectoryError, match=r"\$MEDXAI_DATA: .*MURA-v1.1.zip is not a folder.*unset MEDXAI_DATA"):
        resolve_data_root(None)
    assert resolve_data_root(tmp_path) == tmp_path                   # a folder is accepted
    monkeypatch.delenv(DATA_ENV)
    assert resolve_data_root(None) is None and resolve_data_root("") is None


def test_reliability_doc_lists_every_test():
    page = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    names = [name for name in globals() if name.startswith("test_") and name != "test_reliability_doc_lists_every_test"]
    missing = [name for name in names if f"`{name}`" not in page]
    assert not missing, f"docs/reliability.md does not list {missing}"
