"""Training and sampling of the Patho-GAN generator (Niu et al. 2019), scaled to a CPU.

The generator learns healthy retinas from vessel maps (retinal-detail loss against the real healthy
fundus, adversarial loss from a vessel-conditioned discriminator, total variation), while descriptors
from the bank are placed at random boxes and the pathological loss asks the detector's features of the
synthesised image inside each box to have the descriptor's Gram matrices. ``pathology="global"``
compares whole-image Gram matrices instead (the style-transfer baseline, Tub-sGAN-like). Both modes use
the same detail loss, outside the placed boxes only (:func:`detail_keep_mask`), so the global baseline is
free to draw lesions there: the two differ only in where the pathological loss looks.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from medxai_lib.data.lesions import STYLE_LAYERS, DescriptorBank, box_mask, gram, layer_box, resize_patch
from medxai_lib.models.detector import DRDetector, detector_input
from medxai_lib.models.pathogan import (RandomFeatureNet, UNetGenerator, VesselDiscriminator, anatomy_map,
                                       check_placed, descriptor_maps, synthesize)
from medxai_lib.runtime import (atomic_write, cache_dir, check_memory_format, config_hash, in_memory_format, progress,
                                resolve_device, seed_everything)
from medxai_lib.train.fit import weights_digest


LOSS_VERSION = 6  # part of the generator's cache key: bump when a loss changes (6: random detail features 16/32 wide)
GLOBAL_STATISTICS = "fov"  # the global pathological loss's statistics: over the field of view (part of the global generator's key)


def adversarial_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean of ``(logits - 1)^2`` for real, ``logits^2`` for fake."""
    return (logits - float(real)).pow(2).mean()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels of ``(B, C, H, W)``."""
    return (images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (images[..., 1:] - images[..., :-1]).abs().mean()


def detail_loss(feature_net: torch.nn.Module | None, synthetic: torch.Tensor, real: torch.Tensor,
                keep: torch.Tensor | None = None, real_features: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Retinal detail: L1 between the pixels and the ``feature_net`` features of synthetic and real
    ``(B, 3, S, S)`` images, weighted by ``keep`` ``(B, 1, S, S)`` (1 where the healthy retina should be
    reproduced). The pixel term makes a small CPU run converge; the features are the paper's argument for
    sharp edges such as the disc's. ``feature_net=None``: pixels only (the ablation). ``real_features``:
    ``feature_net(real)`` computed beforehand (the real fundi are fixed, so training computes them once)."""
    if synthetic.shape != real.shape:
        raise ValueError(f"synthetic, real: shapes differ, {tuple(synthetic.shape)} vs {tuple(real.shape)}")
    total = synthetic.new_zeros(())
    features = (lambda x: []) if feature_net is None else feature_net  # noqa: E731
    fake_levels = features(synthetic)
    if real_features is None:
        real_features = features(real)
    elif [tuple(f.shape) for f in real_features] != [tuple(f.shape) for f in fake_levels]:
        raise ValueError(f"real_features: expected shapes {[tuple(f.shape) for f in fake_levels]}, "
                         f"got {[tuple(f.shape) for f in real_features]}")
    levels = zip([synthetic, *fake_levels], [real, *real_features])
    for fs, fr in levels:
        weight = 1.0 if keep is None else F.interpolate(keep, size=fs.shape[-2:], mode="area")
        total = total + ((fs - fr).abs() * weight).mean()
    return total


def pathological_loss(detector: DRDetector, synthetic: torch.Tensor, banks: Sequence[DescriptorBank],
                      mode: str = "local", layers: Sequence[str] = STYLE_LAYERS,
                      scales: dict[str, np.ndarray] | None = None, fov: torch.Tensor | None = None) -> torch.Tensor:
    """Distance between the detector's features of the synthetic images ``(B, 3, S, S)`` in [0, 1] and
    each placed descriptor, averaged over descriptors and layers: the mean squared difference of Gram
    matrices (second-order statistics: texture, not position) plus that of the weighted mean feature
    (first order; without it the Gram term has no gradient where the features are still zero).
    Features are divided by ``scales[layer]`` ``(C,)`` first (:func:`feature_scale`), so that every
    channel and descriptor counts alike.

    ``mode="local"``: features inside the descriptor's box, weighted by its activation and mask (Patho-GAN).
    ``mode="global"``: the image's features against the descriptors' mean statistics (style transfer), over the
    field of view ``fov`` ``(B, 1, S, S)`` when given (each feature cell weighted by the share of it inside the
    FOV; the black surround is not retina), else over the whole image; the local mode ignores ``fov`` (its boxes
    lie inside the FOV already). Whole-image statistics let the generator
    meet them by painting the rim of the FOV, where the surround's edge dominates the features."""
    if mode not in ("local", "global"):
        raise ValueError(f"mode: expected 'local' or 'global', got {mode!r}")
    if len(banks) != len(synthetic):
        raise ValueError(f"banks: expected one bank per image ({len(synthetic)}), got {len(banks)}")
    if fov is not None and fov.shape != (len(synthetic), 1, *synthetic.shape[-2:]):
        raise ValueError(f"fov: expected ({len(synthetic)}, 1, S, S) like synthetic, got {tuple(fov.shape)}")
    deepest = max(layers, key=detector.layer_names.index)
    _, trace = detector.trace(detector_input(synthetic), until=deepest)
    size = synthetic.shape[-1]
    terms = []
    for name in layers:
        inverse = 1.0 / torch.from_numpy(scales[name]) if scales is not None else torch.ones(1)
        inverse = inverse.to(synthetic).view(-1, 1, 1)
        for b, bank in enumerate(banks):
            acts = trace.activations[name][b] * inverse
            rescale = inverse.view(-1, 1) * inverse.view(1, -1)        # gram(F / s) = G / (s s^T)
            targets = [(torch.from_numpy(d.grams[name]).to(acts) * rescale,
                        torch.from_numpy(d.features[name]).to(acts).mean((1, 2)) * inverse.view(-1), d) for d in bank]
            if mode == "global" and targets:
                target_gram = torch.stack([g for g, _, _ in targets]).mean(0)
                target_mean = torch.stack([m for _, m, _ in targets]).mean(0)
                cells = torch.ones_like(acts[:1]) if fov is None else \
                    torch.nn.functional.interpolate(fov[b:b + 1].to(acts), size=acts.shape[-2:], mode="area")[0]
                n = cells.sum().clamp(min=1.0)                     # gram(F w) over the FOV's cells, not all of them
                terms.append((gram(acts, cells) * cells.numel() / n - target_gram).pow(2).mean()
                             + ((acts * cells).sum((1, 2)) / n - target_mean).pow(2).mean())
                continue
            for target_gram, target_mean, d in targets if mode == "local" else ():
                check_placed(d, size)
                x0, y0, x1, y1 = layer_box(d.box, size, acts.shape)
                weight = resize_patch(torch.from_numpy(d.activation * d.mask).to(acts), y1 - y0, x1 - x0)
                weighted = acts[:, y0:y1, x0:x1] * weight
                terms.append((gram(weighted) - target_gram).pow(2).mean()
                             + (weighted.mean((1, 2)) - target_mean).pow(2).mean())
    return torch.stack(terms).mean() if terms else synthetic.new_zeros(())


def feature_scale(bank: DescriptorBank, name: str) -> np.ndarray:
    """Typical magnitude of each channel of the bank's ``name`` feature patches: the mean over
    descriptors of the per-channel maximum ``|feature|``, ``(C,)``, floored at 1e-3 of the largest."""
    peaks = np.stack([np.abs(d.features[name]).reshape(len(d.features[name]), -1).max(1) for d in bank]).mean(0)
    return np.maximum(peaks, 1e-3 * peaks.max() + 1e-12).astype(np.float32)


def random_placements(bank: DescriptorBank, fov: torch.Tensor, count: int, rng: np.random.Generator,
                      radius: float = 0.36) -> DescriptorBank:
    """``count`` descriptors drawn from ``bank`` at random boxes whose centre lies within ``radius x S``
    of the image centre and whose pixels lie in ``fov`` ``(S, S)``."""
    if len(bank) == 0:
        raise ValueError("bank: empty; extract descriptors before placing them")
    size = fov.shape[-1]
    placed = []
    for _ in range(count):
        d = bank[int(rng.integers(len(bank)))]
        w, h = d.box[2] - d.box[0], d.box[3] - d.box[1]
        for _attempt in range(50):
            angle, r = rng.uniform(0, 2 * np.pi), radius * size * np.sqrt(rng.uniform())
            x0, y0 = int(size / 2 + r * np.cos(angle) - w / 2), int(size / 2 + r * np.sin(angle) - h / 2)
            if 0 <= x0 and 0 <= y0 and x0 + w <= size and y0 + h <= size and bool(fov[y0:y0 + h, x0:x0 + w].all()):
                placed.append(d.moved_to(x0, y0))
                break
    return DescriptorBank(placed)


def matched_placements(targets: DescriptorBank, pool: DescriptorBank, fov: torch.Tensor, rng: np.random.Generator
                       ) -> DescriptorBank:
    """For every descriptor of ``targets``, one drawn from ``pool`` and moved so that its box has the same
    centre (shifted by the fewest pixels that keep it inside the image and ``fov`` ``(S, S)``; redrawn up to 50
    times when it does not fit there): the matched negative control of an inoculation, e.g. descriptors of
    kind ``"none"`` (the detector fired where no lesion was) at the very boxes the lesions were put in.
    Every target gets one; an error names the target that no pool descriptor fits."""
    if len(pool) == 0:
        raise ValueError("pool: empty; expected descriptors to place at the target boxes")
    size = fov.shape[-1]
    out = []
    for target in targets:
        cx, cy = (target.box[0] + target.box[2]) / 2, (target.box[1] + target.box[3]) / 2
        for _attempt in range(50):
            d = pool[int(rng.integers(len(pool)))]
            w, h = d.box[2] - d.box[0], d.box[3] - d.box[1]
            x0 = int(np.clip(round(cx - w / 2), 0, size - w))
            y0 = int(np.clip(round(cy - h / 2), 0, size - h))
            if bool(fov[y0:y0 + h, x0:x0 + w].all()):
                out.append(d.moved_to(x0, y0))
                break
        else:
            raise ValueError(f"targets: no descriptor of the pool fits inside the field of view at box {target.box}")
    return DescriptorBank(out)


@dataclass(frozen=True)
class PathoGANConfig:
    """Hyper-parameters of :func:`fit_pathogan` (all part of the cache key)."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    generator_steps_per_discriminator_step: int = 2
    adversarial_weight: float = 0.005   # the paper uses 1; at 250 steps 0..1 change the output less than a new seed (docs/pathogan_ablations.md)
    detail_weight: float = 3.0
    pathological_weight: float = 1.0
    tv_weight: float = 0.01
    pathology: str = "local"          # "local" (Patho-GAN) or "global" (whole-image Gram, Tub-sGAN-like)
    max_lesions: int = 6
    loss_layers: tuple[str, ...] = ("conv1b",)   # conv2b sees beyond most lesion boxes at 96 px
    detail_features: bool = True      # False: the detail loss compares pixels only (ablation of the feature term)
    width: int = 32
    z_dim: int = 32
    seed: int = 0
    memory_format: str = "channels_last"  # training layout of generator and discriminator (same values, 1.6x faster on a CPU)
    disc_channel: bool = True         # the optic-disc mask as a second anatomy channel (False: vessels only, the earlier model)

    def __post_init__(self) -> None:
        check_memory_format(self.memory_format)
        if self.pathology not in ("local", "global"):
            raise ValueError(f"pathology: expected 'local' or 'global', got {self.pathology!r}")
        for name in ("steps", "batch_size", "max_lesions", "generator_steps_per_discriminator_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name in ("steps", "max_lesions") else 1):
                raise ValueError(f"{name}: expected a positive int, got {value!r}")


@dataclass
class PathoGANResult:
    generator: UNetGenerator
    history: list[dict[str, float]] = field(default_factory=list)
    from_cache: bool = False
    checkpoint: Path | None = None
    discriminator: VesselDiscriminator | None = None


def bank_digest(bank: DescriptorBank) -> str:
    """A short hash of every box, kind and Gram matrix in ``bank`` (part of the generator's cache key)."""
    digest = hashlib.sha256()
    for d in bank:
        digest.update(json.dumps([list(d.box), d.kind, d.image_size]).encode())
        for name in sorted(d.grams):
            digest.update(np.ascontiguousarray(d.grams[name], np.float32).tobytes())
    return digest.hexdigest()[:16]


def _stack(healthy: Dataset, indices: np.ndarray, device: torch.device, disc: bool = False) -> dict[str, torch.Tensor]:
    """Items ``indices`` of ``healthy`` stacked; ``vessels`` is the generator's anatomy map (with ``disc``: the
    vessel map and the optic-disc mask, :func:`~medxai_lib.models.pathogan.anatomy_map`)."""
    items = [healthy[int(i)] for i in indices]
    if disc and any("disc" not in item for item in items):
        raise ValueError("healthy: items without a 'disc' mask; give one (estimated_disc) or train with disc_channel=False")
    batch = {key: torch.stack([item[key] for item in items]).to(device) for key in ("image", "vessels", "fov")}
    if disc:
        batch["vessels"] = anatomy_map(batch["vessels"], torch.stack([item["disc"] for item in items]).to(device))
    batch["index"] = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    return batch


REAL_FEATURE_CACHE_BYTES = 768 * 2**20   # above this the detail features of the real fundi are computed per batch


@torch.no_grad()
def real_detail_features(features: torch.nn.Module, healthy: Dataset, device: torch.device,
                         memory_format: str = "contiguous", chunk: int = 16) -> list[torch.Tensor] | None:
    """``features(image)`` of every healthy fundus, per level ``(N, C_l, H_l, W_l)``, computed once for the
    detail loss (the real fundi never change during training); ``None`` when they would take more than
    :data:`REAL_FEATURE_CACHE_BYTES` (paper-sized runs), so that the loss computes them per batch instead."""
    levels: list[list[torch.Tensor]] = []
    for start in range(0, len(healthy), chunk):
        images = torch.stack([healthy[i]["image"] for i in range(start, min(start + chunk, len(healthy)))]).to(device)
        out = features(in_memory_format(images, memory_format))
        if not levels:                          # the first chunk tells the size of the whole set's features
            if sum(f[0].numel() for f in out) * 4 * len(healthy) > REAL_FEATURE_CACHE_BYTES:
                return None
            levels = [[] for _ in out]
        for level, f in zip(levels, out):
            level.append(f)
    return [torch.cat(level) for level in levels]


def fit_pathogan(detector: DRDetector, healthy: Dataset, bank: DescriptorBank, config: PathoGANConfig = PathoGANConfig(),
                 data_key: dict[str, Any] | None = None, device: str | torch.device = "auto",
                 show_progress: bool | None = None) -> PathoGANResult:
    """Train a :class:`UNetGenerator` on healthy fundi only (items with ``image`` in [0, 1], ``vessels``,
    ``fov``, and ``disc`` with ``config.disc_channel``), with descriptors from ``bank`` placed at random boxes: every lesion the generator learns to
    draw comes from the descriptors through the pathological loss. Cached by config, detector weights,
    bank and ``data_key`` when ``data_key`` is given."""
    if len(bank) == 0:
        raise ValueError("bank: empty; the generator needs descriptors to learn lesions from")
    if len(healthy) == 0:
        raise ValueError("healthy: empty dataset")
    first = healthy[0]["image"]
    if first.min() < 0 or first.max() > 1:
        raise ValueError("healthy: expected images in [0, 1] (build the phantom with normalize=False)")
    if first.shape[-1] != bank.image_size:
        raise ValueError(f"healthy: images are {first.shape[-1]} px, the bank's descriptors {bank.image_size} px")
    device = resolve_device(device)
    detector = detector.to(device).eval()
    detector.requires_grad_(False)
    layer_channels = tuple(bank[0].features[name].shape[0] for name in STYLE_LAYERS)
    seed_everything(config.seed)
    anatomy = 2 if config.disc_channel else 1
    generator = UNetGenerator(layer_channels, config.width, config.z_dim, anatomy).to(device)
    for buffer, name in ((generator.map_scale1, STYLE_LAYERS[0]), (generator.map_scale2, STYLE_LAYERS[1])):
        buffer.copy_(torch.from_numpy(1.0 / feature_scale(bank, name)))
    path = None
    if data_key is not None:
        settings = asdict(config)
        if settings["detail_features"]:          # the default leaves the keys of earlier generators unchanged
            del settings["detail_features"]
        if not settings["disc_channel"]:         # so do vessel-only generators (the model before the disc channel)
            del settings["disc_channel"]
        if config.pathology == "global":         # the global statistics changed; the local generators keep their keys
            settings["global_statistics"] = GLOBAL_STATISTICS
        key = {"config": settings, "version": LOSS_VERSION, "detector": weights_digest(detector), "bank": bank_digest(bank),
               "data": data_key, "init": weights_digest(generator)}
        path = cache_dir() / "checkpoints" / f"pathogan-{config_hash(key)}.pt"
        saved = torch.load(path, map_location=device, weights_only=True) if path.exists() else {}
        if "discriminator" in saved:            # checkpoints without it (older ones) are trained again
            generator.load_state_dict(saved["state_dict"])
            discriminator = VesselDiscriminator(config.width, anatomy).to(device)
            discriminator.load_state_dict(saved["discriminator"])
            return PathoGANResult(generator.eval(), json.loads(saved["history"]), True, path, discriminator.eval())
    discriminator = VesselDiscriminator(config.width, anatomy).to(device)
    history = _train(generator, discriminator, detector, healthy, bank, config, device, show_progress)
    if path is not None:
        cpu = lambda m: {k: v.detach().cpu() for k, v in m.state_dict().items()}  # noqa: E731
        atomic_write(path, lambda tmp: torch.save({"state_dict": cpu(generator), "discriminator": cpu(discriminator),
                                                   "history": json.dumps(history)}, tmp))
    return PathoGANResult(generator.eval(), history, False, path, discriminator.eval())


def _batch(healthy: Dataset, bank: DescriptorBank, config: PathoGANConfig, rng: np.random.Generator,
           device: torch.device) -> tuple[dict[str, torch.Tensor], list[DescriptorBank], torch.Tensor]:
    """Healthy fundi with 0..max_lesions random placements each: the tensors, one bank per image and
    the detail loss's keep mask ``(B, 1, S, S)`` (the field of view outside the boxes)."""
    batch = _stack(healthy, rng.integers(len(healthy), size=config.batch_size), device, config.disc_channel)
    banks = [random_placements(bank, fov[0].cpu(), int(rng.integers(config.max_lesions + 1)), rng) for fov in batch["fov"]]
    return batch, banks, detail_keep_mask(banks, batch["fov"])


def detail_keep_mask(banks: Sequence[DescriptorBank], fov: torch.Tensor) -> torch.Tensor:
    """Where the retinal-detail loss applies, for both pathology modes: the field of view ``(B, 1, S, S)``
    outside the placed boxes (one bank per image). Inside the boxes only the pathological loss speaks,
    so a global-loss generator is as free to draw lesions as the local one."""
    if len(banks) != len(fov) or fov.ndim != 4:
        raise ValueError(f"banks, fov: expected one bank per (B, 1, S, S) field of view, got {len(banks)} and "
                         f"{tuple(fov.shape)}")
    return (1 - box_mask(banks, fov.shape[-1])).to(fov) * fov


def loss_weights(config: PathoGANConfig) -> dict[str, float]:
    """The weight of each term of the generator's loss, by the term's name."""
    return {"adversarial": config.adversarial_weight, "detail": config.detail_weight,
            "pathological": config.pathological_weight, "tv": config.tv_weight}


def _generator_terms(fake: torch.Tensor, batch: dict[str, torch.Tensor], banks: Sequence[DescriptorBank],
                     keep: torch.Tensor, discriminator: VesselDiscriminator, features: torch.nn.Module | None,
                     detector: DRDetector, config: PathoGANConfig, scales: dict[str, np.ndarray],
                     real_features: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The unweighted terms of the generator's loss for a synthesised batch ``fake`` ``(B, 3, S, S)``;
    ``real_features``: :func:`real_detail_features` of the whole healthy set (indexed by ``batch["index"]``)."""
    real = None if real_features is None else [f[batch["index"]] for f in real_features]
    return {"adversarial": adversarial_loss(discriminator(fake, batch["vessels"]), True),
            "detail": detail_loss(features, fake, batch["image"], keep, real),
            "pathological": pathological_loss(detector, fake, banks, config.pathology, config.loss_layers, scales, batch["fov"]),
            "tv": total_variation(fake)}


def _train(generator: UNetGenerator, discriminator: VesselDiscriminator, detector: DRDetector, healthy: Dataset,
           bank: DescriptorBank, config: PathoGANConfig, device: torch.device,
           show_progress: bool | None) -> list[dict[str, float]]:
    features = RandomFeatureNet(config.seed).to(device) if config.detail_features else None
    for net in (generator, discriminator, features):
        if net is not None:
            in_memory_format(net, config.memory_format)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=config.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=config.betas)
    rng = np.random.default_rng(config.seed)
    scales = {name: feature_scale(bank, name) for name in config.loss_layers}
    real_features = real_detail_features(features, healthy, device, config.memory_format) if features is not None else None
    size = bank.image_size
    history: list[dict[str, float]] = []
    generator.train()
    for step in progress(range(config.steps), enabled=show_progress, desc="GAN steps"):
        batch, banks, keep = _batch(healthy, bank, config, rng, device)
        batch = {k: in_memory_format(v, config.memory_format) for k, v in batch.items()}
        z = torch.from_numpy(rng.standard_normal((config.batch_size, config.z_dim)).astype(np.float32)).to(device)
        maps = descriptor_maps(banks, size, generator.descriptor_channels, device=device)
        fake = generator(batch["vessels"], batch["fov"], z, [in_memory_format(m, config.memory_format) for m in maps])
        if step % config.generator_steps_per_discriminator_step == 0:
            loss_d = (adversarial_loss(discriminator(batch["image"], batch["vessels"]), True)
                      + adversarial_loss(discriminator(fake.detach(), batch["vessels"]), False))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        discriminator.requires_grad_(False)   # the generator's step needs no discriminator weight gradients
        parts = _generator_terms(fake, batch, banks, keep, discriminator, features, detector, config, scales, real_features)
        weights = loss_weights(config)
        loss_g = sum(weights[k] * v for k, v in parts.items())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        discriminator.requires_grad_(True)
        history.append({"step": step + 1, **{k: float(v.detach()) for k, v in parts.items()}})
    for net in (generator, discriminator):
        in_memory_format(net, "contiguous")
    return history


def loss_gradient_shares(result: PathoGANResult, detector: DRDetector, healthy: Dataset, bank: DescriptorBank,
                         config: PathoGANConfig, batches: int = 4, device: str | torch.device = "auto") -> dict[str, float]:
    """How hard each weighted term of the generator's loss pushes the trained generator of ``result`` (made
    by :func:`fit_pathogan` with ``config``): the norm of the gradient of ``weight x term`` with respect to
    the generator's parameters, averaged over ``batches`` fresh training-like batches and divided by the
    sum over terms (shares sum to 1). A term whose share is near 0 barely moves the next update: a
    gradient-level ablation that costs one backward pass per term and batch. The adversarial term is
    judged by the discriminator saved at the end of training."""
    if not isinstance(batches, int) or batches < 1:
        raise ValueError(f"batches: expected a positive int, got {batches!r}")
    if result.discriminator is None:
        raise ValueError("result: has no discriminator (a generator trained before it was saved); retrain it")
    device = resolve_device(device)
    generator, detector = result.generator.to(device), detector.to(device).eval()
    detector.requires_grad_(False)
    discriminator = result.discriminator.to(device).eval()
    features = RandomFeatureNet(config.seed).to(device) if config.detail_features else None
    scales = {name: feature_scale(bank, name) for name in config.loss_layers}
    weights = loss_weights(config)
    rng = np.random.default_rng(config.seed + 1)
    params = [p for p in generator.parameters() if p.requires_grad]
    norms: dict[str, list[float]] = {k: [] for k in weights}
    for _ in range(batches):
        batch, banks, keep = _batch(healthy, bank, config, rng, device)
        z = torch.from_numpy(rng.standard_normal((config.batch_size, config.z_dim)).astype(np.float32)).to(device)
        fake = generator(batch["vessels"], batch["fov"], z,
                         descriptor_maps(banks, bank.image_size, generator.descriptor_channels, device=device))
        terms = _generator_terms(fake, batch, banks, keep, discriminator, features, detector, config, scales)
        for name, term in terms.items():
            grads = torch.autograd.grad(weights[name] * term, params, retain_graph=True, allow_unused=True)
            norms[name].append(float(torch.sqrt(sum((g.pow(2).sum() for g in grads if g is not None),
                                                    torch.zeros((), device=device)))))
    means = {k: float(np.mean(v)) for k, v in norms.items()}
    total = sum(means.values()) or 1.0
    return {k: v / total for k, v in means.items()}

