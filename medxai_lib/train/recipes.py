"""Recipes shared by notebooks: the same configuration gives the same cached model everywhere."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import nn
from torch.utils.data import Dataset

from medxai_lib.data import radiograph_splits, resolve_data_root
from medxai_lib.models import build_model
from medxai_lib.runtime import resolve_device, seed_everything
from medxai_lib.train.fit import FitResult, TrainConfig, checkpoint_path, fit
from medxai_lib.train.workers import one_thread, warm_cache


@dataclass
class TrainedRadiographModel:
    model: nn.Module
    train: Dataset
    val: Dataset
    fit: FitResult
    root: Path | None
    data_key: dict[str, Any]


def radiograph_classifier(seed: int = 0, image_size: int = 96, n_train_studies: int = 300, n_val_studies: int = 120,
                          arch: str = "densenet_small", pretrained: bool = False, epochs: int = 12,
                          batch_size: int = 32, lr: float = 1e-3, data_root: str | Path | None = None,
                          max_images: int | None = None, device: str = "auto") -> TrainedRadiographModel:
    """An abnormality classifier (one logit) on the radiograph phantom, or on MURA when a data root is
    given, trained once and cached (notebooks 03 and 04 share it)."""
    root = resolve_data_root(data_root)
    channels = 3 if arch == "densenet169" else 1
    train, val = radiograph_splits(root, size=image_size, channels=channels, seed=seed, n_train_studies=n_train_studies,
                                   n_val_studies=n_val_studies, max_images=max_images)
    seed_everything(seed)
    net = build_model(arch, num_classes=1, in_channels=channels, pretrained=pretrained)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    data_key = {"data": str(root or "phantom"), "size": image_size, "train": n_train_studies, "seed": seed,
                "max": max_images}
    result = fit(net, train, val, config, device=resolve_device(device), cache_key=data_key)
    return TrainedRadiographModel(result.model, train, val, result, root, data_key)


SKIN_RENDERER_VERSION = 2  # bump when the skin phantom's pixels change, so cached models are retrained


@dataclass
class TrainedSkinModel:
    model: nn.Module
    train: Dataset
    val: Dataset
    fit: FitResult
    root: Path | None


def skin_classifier(seed: int = 0, image_size: int = 96, n_train_lesions: int = 400, n_val_lesions: int = 200,
                    width: int = 16, epochs: int = 10, lr: float = 2e-3, batch_size: int = 32,
                    data_root: str | Path | None = None, attention: bool = False, device: str = "auto",
                    hair_density: float = 2.0) -> TrainedSkinModel:
    """Benign / malignant classifier (two logits) on the skin-lesion phantom, or on HAM10000 (melanoma
    vs the rest; split by lesion) when a data root holds ``HAM10000_metadata.csv``. Cached.
    ``hair_density``: the phantom's mean hairs per image (train and validation; ignored for real data);
    the default keeps the cache key, and so the cached model, that notebooks 01, 02 and 04 share."""
    from medxai_lib.data import HAM10000, SkinLesionPhantom, group_split
    from medxai_lib.models.cnn import AttentionGatedCNN, SkinCNN
    root = resolve_data_root(data_root)
    if root is None:
        train: Dataset = SkinLesionPhantom(n_train_lesions, size=image_size, seed=seed, hair_density=hair_density)
        val: Dataset = SkinLesionPhantom(n_val_lesions, size=image_size, seed=seed + 1000, hair_density=hair_density)
    else:
        full = _MelanomaVsRest(HAM10000(root, size=image_size))
        train_idx, val_idx = group_split(full.base.lesion_ids, (0.8, 0.2), seed=seed)
        train, val = _Subset(full, train_idx), _Subset(full, val_idx)
    seed_everything(seed)
    net = (AttentionGatedCNN if attention else SkinCNN)(2, 3, width)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    key = {"data": str(root or "skin-phantom"), "size": image_size, "train": n_train_lesions, "seed": seed,
           "renderer": SKIN_RENDERER_VERSION}
    if root is None and hair_density != 2.0:   # only a non-default density enters the key
        key["hair_density"] = float(hair_density)
    result = fit(net, train, val, config, device=resolve_device(device), cache_key=key)
    return TrainedSkinModel(result.model, train, val, result, root)


class _MelanomaVsRest(Dataset):
    """HAM10000 relabelled 1 = melanoma, 0 = anything else."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    @property
    def labels(self):  # noqa: ANN201
        from medxai_lib.data import HAM_CLASSES
        return (self.base.labels == HAM_CLASSES.index("mel")).astype("int64")

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        from medxai_lib.data import HAM_CLASSES
        item["label"] = (item["label"] == HAM_CLASSES.index("mel")).long()
        return item


class _Subset(Dataset):
    def __init__(self, base: Dataset, indices: Any) -> None:
        self.base, self.indices = base, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self):  # noqa: ANN201
        return self.base.labels[self.indices]

    @property
    def has_masks(self) -> bool:
        return False

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.base[self.indices[index]]


FUNDUS_RENDERER_VERSION = 1  # bump when the fundus phantom's pixels change, so cached detectors are retrained


@dataclass
class TrainedDetector:
    model: nn.Module
    train: Dataset
    val: Dataset
    fit: FitResult
    restarts: int = 0       # how many times a collapsed run was retrained from new initial weights


DETECTOR_ARCHS = ("o_O", "bn_cnn")


def _same_eyes(given: Dataset, wanted: Dataset) -> bool:
    """Whether ``given`` holds the eyes of ``wanted`` at its size: the same phantom specs, or the same Kaggle DR items."""
    identity = lambda d: (type(d), getattr(d, "specs", None), list(getattr(d, "indices", [])),  # noqa: E731
                          getattr(getattr(d, "base", d), "size", None))
    return identity(given) == identity(wanted)


def dr_detector(seed: int = 0, image_size: int = 96, n_train: int = 900, n_val: int = 240, width: int = 16,
                epochs: int = 15, lr: float = 1e-3, batch_size: int = 32, device: str = "auto",
                restarts: int = 0, arch: str = "o_O", data: TrainedDetector | None = None,
                data_root: str | Path | None = None) -> TrainedDetector:
    """The o_O-style DR grade regressor (:class:`~medxai_lib.models.detector.DRDetector`) on the fundus
    phantom (MSE on the grade, quadratic kappa on a held-out split; disjoint seeds), or, with a ``data_root``
    holding ``KaggleDR/`` (and ``DRIVE/``, :func:`~medxai_lib.data.koch_folders`), on Kaggle DR grades split by
    patient (:func:`~medxai_lib.data.kaggle_dr_splits`, ``n_train`` / ``n_val`` eyes). Cached.

    ``restarts``: a grade regressor can collapse to a constant (every eye scored near the mean grade).
    When the spread of its held-out scores is under a quarter of the grades' spread, it is retrained
    from new initial weights (``seed + 1000 * attempt``) up to ``restarts`` times; the data stay the same.
    ``restarts=0`` is the original recipe (same model, same cache key).

    ``arch="bn_cnn"``: an *independent* grade regressor for re-detection — 3x3 convs with batch norm and
    ReLU, max-pools, global average pooling and a linear head (:class:`~medxai_lib.models.cnn.SkinCNN` with
    one output), with its own initial weights and batch order (``seed + 7``), on the same phantom data.
    ``data``: a detector trained by this recipe with the same ``seed``, ``image_size``, ``n_train`` and
    ``n_val``, whose (already rendered) phantoms are reused."""
    from medxai_lib.data import FundusPhantom, kaggle_dr_splits, koch_folders
    from medxai_lib.models.detector import DRDetector
    from medxai_lib.models.inference import predict_logits
    from medxai_lib.models.cnn import SkinCNN
    if not isinstance(restarts, int) or restarts < 0:
        raise ValueError(f"restarts: expected an int >= 0, got {restarts!r}")
    if arch not in DETECTOR_ARCHS:
        raise ValueError(f"arch: expected one of {DETECTOR_ARCHS}, got {arch!r}")
    folders = koch_folders(data_root)
    if folders is None:
        train, val = FundusPhantom(n_train, size=image_size, seed=seed), FundusPhantom(n_val, size=image_size, seed=seed + 1000)
    else:
        train, val, _ = kaggle_dr_splits(folders["KaggleDR"], image_size, n_train, n_val, 0, seed)
    if data is not None:
        if not (_same_eyes(data.train, train) and _same_eyes(data.val, val)):
            raise ValueError("data: its eyes differ from this call's (seed, image_size, n_train, n_val, data_root); "
                             "pass a detector trained with the same ones, or None")
        train, val = data.train, data.val
    own = seed if arch == "o_O" else seed + 7
    # bn_cnn trains channels-last (1.4x faster steps on a CPU, benchmarks/training_layout.py); the o_O detector keeps
    # the usual layout: it gains only 1.1x, and its cached weights (and every result built on them) stay as they were
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=own, objective="regression",
                         memory_format="contiguous" if arch == "o_O" else "channels_last", validate="last")
    key = {"data": "fundus-phantom" if folders is None else str(folders["KaggleDR"]), "size": image_size, "train": n_train,
           "seed": seed, **({"renderer": FUNDUS_RENDERER_VERSION} if folders is None else {"val": n_val}),
           **({"arch": arch} if arch != "o_O" else {})}
    for attempt in range(restarts + 1):
        seed_everything(own + 1000 * attempt)
        net = DRDetector(width=width) if arch == "o_O" else SkinCNN(1, 3, width)
        result = fit(net, train, val, config, device=resolve_device(device), cache_key=key)
        spread = float(predict_logits(result.model, val, device=resolve_device(device)).std()) if restarts else 1.0
        if spread >= 0.25 * float(val.labels.std()):
            break
    return TrainedDetector(result.model, train, val, result, attempt)


def shortcut_classifier(seed: int = 0, marker_correlation: float = 1.0, image_size: int = 96,
                        n_train_studies: int = 300, arch: str = "densenet_small", epochs: int = 12,
                        batch_size: int = 32, lr: float = 1e-3, device: str = "auto") -> TrainedRadiographModel:
    """An abnormality classifier trained on phantoms whose laterality marker correlates with the label by
    ``marker_correlation`` (1: every abnormal study has one, no normal study; 0: independent of the label).
    Same recipe as :func:`radiograph_classifier` (architecture, epochs, optimiser) so the two are comparable;
    ``seed`` sets both the training phantom (``seed + 3000``) and the initial weights. No validation split
    (the notebook tests on marker-uncorrelated images). On a CPU it trains with one thread (the same weights
    in a worker process of :func:`shortcut_classifiers` and here). Cached."""
    train, net, config, key, device = _shortcut_parts(seed, marker_correlation, image_size, n_train_studies, arch,
                                                      epochs, batch_size, lr, device)
    with one_thread() if device.type == "cpu" else nullcontext():
        result = fit(net, train, None, config, device=device, cache_key=key)
    return TrainedRadiographModel(result.model, train, train, result, None, key)


def _shortcut_parts(seed: int, marker_correlation: float, image_size: int, n_train_studies: int, arch: str,
                    epochs: int, batch_size: int, lr: float, device: str
                    ) -> tuple[Dataset, nn.Module, TrainConfig, dict[str, Any], "torch.device"]:
    if not -1.0 <= marker_correlation <= 1.0:
        raise ValueError(f"marker_correlation: expected a value in [-1, 1], got {marker_correlation!r}")
    from medxai_lib.data import RadiographPhantom
    channels = 3 if arch == "densenet169" else 1
    train = RadiographPhantom(n_train_studies, size=image_size, seed=seed + 3000, channels=channels,
                              marker_correlation=marker_correlation)
    seed_everything(seed)
    net = build_model(arch, num_classes=1, in_channels=channels)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, memory_format="channels_last")
    key = {"data": "phantom-marker", "size": image_size, "train": n_train_studies, "seed": seed,
           "marker_correlation": float(marker_correlation)}
    device = resolve_device(device)
    if device.type == "cpu":
        key["threads"] = 1
    return train, net, config, key, device


def shortcut_classifiers(seeds: Sequence[int], marker_correlations: Sequence[float], image_size: int = 96,
                         n_train_studies: int = 300, arch: str = "densenet_small", epochs: int = 12,
                         batch_size: int = 32, lr: float = 1e-3, device: str = "auto", workers: int = 2
                         ) -> dict[tuple[float, int], TrainedRadiographModel]:
    """:func:`shortcut_classifier` for every marker correlation and seed, keyed ``(correlation, seed)``. On a
    CPU the models that are not cached train ``workers`` at a time in separate processes
    (:func:`~medxai_lib.train.workers.warm_cache`; each trains with one thread either way, so the weights do
    not depend on ``workers``)."""
    keys = [(float(phi), int(seed)) for phi in marker_correlations for seed in seeds]
    args = dict(image_size=image_size, n_train_studies=n_train_studies, arch=arch, epochs=epochs,
                batch_size=batch_size, lr=lr, device="cpu")
    if resolve_device(device).type == "cpu":
        todo = [(phi, seed) for phi, seed in keys
                if not checkpoint_path(*_shortcut_parts(seed, phi, **args)[1:4]).exists()]
        warm_cache([(shortcut_classifier, dict(seed=seed, marker_correlation=phi, **args)) for phi, seed in todo], workers)
    return {(phi, seed): shortcut_classifier(seed, phi, image_size, n_train_studies, arch, epochs, batch_size, lr, device)
            for phi, seed in keys}


@dataclass
class TrainedLesionClassifier:
    model: nn.Module
    train: Dataset
    val: Dataset
    fit: FitResult


def lesion_type_classifier(seed: int = 0, image_size: int = 96, n_train: int = 300, n_val: int = 100, crop: int = 16,
                           width: int = 24, epochs: int = 8, lr: float = 2e-3, batch_size: int = 64,
                           device: str = "auto") -> TrainedLesionClassifier:
    """The independent lesion-type classifier of notebook 06
    (:class:`~medxai_lib.models.lesion_classifier.LesionTypeNet`): trained on crops of the same fundus
    phantom as :func:`dr_detector` (its first ``n_train`` images; validation crops from the detector's
    held-out seed), with its own initial weights (``seed + 17``). Cached."""
    from medxai_lib.data import FundusPhantom
    from medxai_lib.data.lesion_crops import LesionCropDataset
    from medxai_lib.models.lesion_classifier import LesionTypeNet
    train = LesionCropDataset(FundusPhantom(n_train, size=image_size, seed=seed, normalize=False), crop, seed=seed)
    val = LesionCropDataset(FundusPhantom(n_val, size=image_size, seed=seed + 1000, normalize=False), crop, seed=seed + 1)
    seed_everything(seed + 17)
    net = LesionTypeNet(crop, width)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + 17, validate="last")
    key = {"data": "fundus-phantom-crops", "size": image_size, "train": n_train, "seed": seed,
           "renderer": FUNDUS_RENDERER_VERSION, "crop": crop}
    result = fit(net, train, val, config, device=resolve_device(device), cache_key=key)
    return TrainedLesionClassifier(result.model, train, val, result)
