"""Training MDNet on reports: the joint objective, cached by config hash like :func:`medxai_lib.train.fit`.

Every model here sees each training image once per epoch, in the same batches for a given seed (equal
image-update budgets): the joint model with one of the image's reports (report ``(epoch + i) mod R``),
the image-only variants with the label alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from medxai_lib.data.phantoms.histology import Vocabulary, tokenize
from medxai_lib.models.mdnet import MDNet, MDNetImage, mdnet_loss
from medxai_lib.runtime import (atomic_write, cache_dir, check_memory_format, config_hash, in_memory_format, progress,
                                resolve_device, seed_everything)


@dataclass(frozen=True)
class MDNetConfig:
    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 32
    beta: float = 0.5
    eta: float = 1.0
    aas: bool = True               # the AAS module M classifies and gives w^c (False: D's GAP + FC does)
    language: bool = True          # False: image model + M trained on the label alone (same batches)
    max_len: int = 48
    seed: int = 0
    memory_format: str = "channels_last"  # training layout of the conv layers (same values, 1.6x faster on a CPU)

    def __post_init__(self) -> None:
        check_memory_format(self.memory_format)


def stack_dataset(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (N, 3, S, S), labels (N,))`` of a dataset of dicts."""
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([it["image"] for it in items]), torch.stack([torch.as_tensor(it["label"]) for it in items])


def encode_reports(reports: list[list[str]], vocab: Vocabulary, max_len: int) -> torch.Tensor:
    """Token ids ``(N, R, max_len)`` of ``R`` reports per image (padded with 0)."""
    if len({len(r) for r in reports}) != 1:
        raise ValueError("reports: expected the same number of reports for every image")
    return torch.tensor([[vocab.encode(r, max_len) for r in per_image] for per_image in reports])


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    return list(order.split(batch_size))


def _checkpoint(kind: str, model: nn.Module, config: MDNetConfig, cache_key: dict[str, Any], extra: dict[str, Any]
                ) -> Path:
    key = {"config": asdict(config), "data": cache_key, "arch": repr(model), **extra}
    return cache_dir() / "checkpoints" / f"{kind}-{config_hash(key)}.pt"


def _mdnet_spec(vocab: Vocabulary, num_classes: int, config: MDNetConfig) -> tuple[str, MDNet, dict[str, Any]]:
    """``(cache kind, freshly initialised model, extra cache-key fields)`` of :func:`fit_mdnet`."""
    model = MDNet(len(vocab), num_classes, beta=config.beta, eta=config.eta, aas=config.aas)
    return "mdnet", model, {"vocab": vocab.itos}


def _image_spec(num_classes: int, connection: str) -> tuple[str, MDNetImage, dict[str, Any]]:
    """``(cache kind, freshly initialised model, extra cache-key fields)`` of :func:`fit_image_model`."""
    return "mdnet-image", MDNetImage(num_classes, connection=connection), {"connection": connection}


def _cached(kind: str, model: nn.Module, config: MDNetConfig, cache_key: dict[str, Any] | None,
            extra: dict[str, Any], train: Callable[[], list[dict[str, float]]], device: torch.device
            ) -> tuple[list[dict[str, float]], bool]:
    """Load ``model`` from the cache when its key exists, else run ``train()`` and save it."""
    path = None
    if cache_key is not None:
        path = _checkpoint(kind, model, config, cache_key, extra)
        if path.exists():
            saved = torch.load(path, map_location=device, weights_only=True)
            model.load_state_dict(saved["state_dict"])
            model.eval()
            return json.loads(saved["history"]), True
    history = train()
    model.eval()
    if path is not None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_write(path, lambda tmp: torch.save({"state_dict": state, "history": json.dumps(history)}, tmp))
    return history, False


def _optimise(model: nn.Module, config: MDNetConfig, n: int, step: Callable[[torch.Tensor, int], dict[str, float]],
              show_progress: bool | None) -> list[dict[str, float]]:
    in_memory_format(model, config.memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    n_batches = -(-n // config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, config.epochs * n_batches))
    history = []
    for epoch in progress(range(config.epochs), enabled=show_progress, desc="epochs"):
        model.train()
        sums: dict[str, float] = {}
        for idx in _batches(n, config.batch_size, config.seed, epoch):
            loss, parts = step(idx, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v / n_batches
        history.append({"epoch": epoch + 1, **sums})
    in_memory_format(model, "contiguous")
    return history


def fit_mdnet(train: Dataset, vocab: Vocabulary, config: MDNetConfig = MDNetConfig(), num_classes: int = 4,
              device: str = "auto", cache_key: dict[str, Any] | None = None, show_progress: bool | None = None
              ) -> tuple[MDNet, list[dict[str, float]], bool]:
    """Train an :class:`MDNet` on a dataset with ``reports``; returns ``(model, history, from_cache)``.
    With ``config.language=False`` only ``L_M`` trains (the image-only model with the same budget)."""
    device = resolve_device(device)
    seed_everything(config.seed)
    kind, model, extra = _mdnet_spec(vocab, num_classes, config)
    model = model.to(device)

    def run() -> list[dict[str, float]]:
        images, labels = stack_dataset(train)
        tokens = encode_reports(train.reports, vocab, config.max_len)

        def step(idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
            x, y = in_memory_format(images[idx].to(device), config.memory_format), labels[idx].to(device)
            if not config.language:
                return mdnet_loss(model.diagnose(x), y, None, None, config.beta)
            tok = tokens[idx, (epoch + idx) % tokens.shape[1]].to(device)
            tok = tok[:, :int((tok > 0).sum(1).max())]                    # trim padding columns
            class_logits, word_logits, _, _ = model(x, tok)
            return mdnet_loss(class_logits, y, word_logits, tok, config.beta)
        return _optimise(model, config, len(images), step, show_progress)

    history, cached = _cached(kind, model, config, cache_key, extra, run, device)
    return model, history, cached


def fit_image_model(train: Dataset, connection: str = "ensemble", config: MDNetConfig = MDNetConfig(),
                    num_classes: int = 4, device: str = "auto", cache_key: dict[str, Any] | None = None,
                    show_progress: bool | None = None) -> tuple[MDNetImage, list[dict[str, float]], bool]:
    """Train the image model D alone (GAP + FC, cross-entropy) with ``connection`` ``"ensemble"`` or
    ``"additive"``, on the same batches as :func:`fit_mdnet`; returns ``(model, history, from_cache)``."""
    device = resolve_device(device)
    seed_everything(config.seed)
    kind, model, extra = _image_spec(num_classes, connection)
    model = model.to(device)

    def run() -> list[dict[str, float]]:
        images, labels = stack_dataset(train)

        def step(idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
            x = in_memory_format(images[idx].to(device), config.memory_format)
            loss = F.cross_entropy(model(x), labels[idx].to(device))
            return loss, {"image": float(loss.detach())}
        return _optimise(model, config, len(images), step, show_progress)

    history, cached = _cached(kind, model, config, cache_key, extra, run, device)
    return model, history, cached


def _probe_spec(n_attributes: int, grades: int = 3) -> tuple[str, MDNetImage, dict[str, Any]]:
    """``(cache kind, freshly initialised model, extra cache-key fields)`` of :func:`fit_attribute_probe`."""
    return "attribute-probe", MDNetImage(n_attributes * grades), {"probe": "attribute grades", "grades": grades}


def fit_attribute_probe(train: Dataset, config: MDNetConfig = MDNetConfig(), grades: int = 3, device: str = "auto",
                        cache_key: dict[str, Any] | None = None) -> tuple[MDNetImage, list[dict[str, float]], bool]:
    """A readability check of the attributes: the ensemble image model D trained to grade every attribute
    directly (items with ``grades`` ``(A,)`` in ``0..grades-1``; one ``grades``-way cross-entropy per attribute,
    summed), on the same batches and budget as :func:`fit_image_model`. If this probe cannot beat the majority
    grade, no report model can state that attribute from the image. Returns ``(model, history, from_cache)``;
    :func:`probe_grades` reads it."""
    device = resolve_device(device)
    n_attributes = int(torch.as_tensor(train[0]["grades"]).numel())
    seed_everything(config.seed)
    kind, model, extra = _probe_spec(n_attributes, grades)
    model = model.to(device)

    def run() -> list[dict[str, float]]:
        images, _ = stack_dataset(train)
        targets = torch.stack([torch.as_tensor(train[i]["grades"]) for i in range(len(train))])
        if targets.min() < 0 or targets.max() >= grades:
            raise ValueError(f"train: grades must lie in 0..{grades - 1}, got {int(targets.min())}..{int(targets.max())}")

        def step(idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
            logits = model(in_memory_format(images[idx].to(device), config.memory_format))
            loss = F.cross_entropy(logits.view(-1, grades), targets[idx].reshape(-1).to(device)) * n_attributes
            return loss, {"probe": float(loss.detach())}
        return _optimise(model, config, len(images), step, None)

    history, cached = _cached(kind, model, config, cache_key, extra, run, device)
    return model, history, cached


@torch.no_grad()
def probe_grades(model: MDNetImage, images: torch.Tensor, grades: int = 3) -> np.ndarray:
    """The attribute grades ``(N, A)`` that a :func:`fit_attribute_probe` model reads from ``images`` ``(N, 3, S, S)``."""
    logits = model.eval()(images)
    if logits.shape[1] % grades:
        raise ValueError(f"model: {logits.shape[1]} outputs are not a whole number of {grades}-grade attributes")
    return logits.view(len(images), -1, grades).argmax(-1).cpu().numpy()


@torch.no_grad()
def report_log_likelihood(model: MDNet, images: torch.Tensor, vocab: Vocabulary, text: str,
                          prefixes: list[str] | None = None, batch_size: int = 64) -> np.ndarray:
    """``log p(text | I, prefix)`` per image, teacher-forced, ``(N,)``: the summed log-probabilities of the
    words of ``text`` (and its ``<eos>`` when there is no prefix). ``prefixes`` (one string per image, e.g. the
    sentences a report has before the one asked about) are read first and not scored."""
    query = tokenize(text)
    unknown = [w for w in query if w not in vocab.stoi]
    if unknown:
        raise ValueError(f"text: words not in the vocabulary: {unknown}")
    if prefixes is not None and len(prefixes) != len(images):
        raise ValueError(f"prefixes: expected one per image ({len(images)}), got {len(prefixes)}")
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        part = images[start:start + batch_size]
        heads = [tokenize(prefixes[start + b]) if prefixes is not None else [] for b in range(len(part))]
        seqs = [[vocab.stoi["<bos>"]] + [vocab.stoi.get(w, vocab.stoi["<unk>"]) for w in head + query]
                + ([] if prefixes is not None else [vocab.stoi["<eos>"]]) for head in heads]
        width = max(map(len, seqs))
        tokens = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=part.device)
        _, word_logits, _, _ = model(part, tokens)
        logp = torch.log_softmax(word_logits, -1).gather(2, tokens[:, 1:, None])[..., 0]      # (B, T-1)
        scored = torch.zeros_like(logp, dtype=torch.bool)
        for b, (head, seq) in enumerate(zip(heads, seqs)):
            scored[b, len(head):len(seq) - 1] = True
        out.append((logp * scored).sum(1).cpu())
    return torch.cat(out).numpy()


VARIANTS = ("MDNet (joint, AAS)", "MDNet (joint, no AAS)", "image model alone (ensemble)",
            "image model alone (additive)")


PROBE = "attribute probe"


def _variant_jobs(seeds: list[int], config: MDNetConfig) -> list[tuple[str, MDNetConfig, str]]:
    """``(variant, config, connection)`` for every model of :func:`fit_variants`, in its order."""
    jobs = []
    for seed in seeds:
        cfg = replace(config, seed=int(seed))
        jobs += [(VARIANTS[0], replace(cfg, aas=True), ""), (VARIANTS[1], replace(cfg, aas=False), ""),
                 (VARIANTS[2], cfg, "ensemble"), (VARIANTS[3], cfg, "additive")]
    return jobs


def _fit_job(job: tuple[str, MDNetConfig, str], train: Dataset, vocab: Vocabulary, num_classes: int, device: str,
             cache_key: dict[str, Any] | None, show_progress: bool | None = None) -> tuple[nn.Module, bool]:
    variant, cfg, connection = job
    if variant == PROBE:
        model, _, hit = fit_attribute_probe(train, cfg, device=device, cache_key=cache_key)
    elif variant.startswith("MDNet"):
        model, _, hit = fit_mdnet(train, vocab, cfg, num_classes, device, cache_key, show_progress)
    else:
        model, _, hit = fit_image_model(train, connection, cfg, num_classes, device, cache_key, show_progress)
    return model, hit


def _job_checkpoint(job: tuple[str, MDNetConfig, str], vocab: Vocabulary, num_classes: int,
                    cache_key: dict[str, Any]) -> Path:
    variant, cfg, connection = job
    if variant == PROBE:
        kind, model, extra = _probe_spec(int(connection))
    else:
        kind, model, extra = _mdnet_spec(vocab, num_classes, cfg) if variant.startswith("MDNet") else \
            _image_spec(num_classes, connection)
    return _checkpoint(kind, model, cfg, cache_key, extra)


def _train_in_worker(job: tuple[str, MDNetConfig, str], train: Dataset, vocab: Vocabulary, num_classes: int,
                     cache_key: dict[str, Any], threads: int) -> None:
    """Worker process: train one model on the CPU with the parent's thread count and save it to the cache."""
    torch.set_num_threads(threads)
    _fit_job(job, train, vocab, num_classes, "cpu", cache_key, show_progress=False)


def fit_variants(train: Dataset, vocab: Vocabulary, seeds: list[int], config: MDNetConfig = MDNetConfig(),
                 num_classes: int = 4, device: str = "auto", cache_key: dict[str, Any] | None = None,
                 workers: int = 1, probe: bool = False) -> tuple[dict[str, list[nn.Module]], int]:
    """The four models of the fair comparison for every seed, all with the same epochs, batches and
    image-update budget: MDNet with and without AAS (joint), the image model alone with ensemble
    connections and with additive shortcuts. Returns ``({variant: [model per seed]}, number from cache)``.

    ``workers > 1`` (CPU with a ``cache_key`` only) trains the models that are not cached in that many
    processes, each with this process's torch thread count, then loads them from the cache: every model is
    seeded on its own, so the weights are the same as with ``workers=1``; only the wall time changes.
    ``probe=True`` also trains an attribute probe per seed (:func:`fit_attribute_probe`, same config) among the
    uncached jobs, so that a later :func:`fit_attribute_probe` call loads it from the cache (not returned)."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    jobs = _variant_jobs(seeds, config)
    n_attributes = str(torch.as_tensor(train[0]["grades"]).numel()) if probe else ""   # a probe job's third field
    probe_jobs = [(PROBE, replace(config, seed=int(seed)), n_attributes) for seed in seeds] if probe else []
    todo = []
    if workers > 1 and cache_key is not None and resolve_device(device).type == "cpu":
        todo = [job for job in jobs + probe_jobs if not _job_checkpoint(job, vocab, num_classes, cache_key).exists()]
        todo.sort(key=lambda job: not job[0].startswith("MDNet"))     # the slow joint models first
    if len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        stack_dataset(train)   # a phantom renders its items once, here, and each worker receives them rendered
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_train_in_worker, job, train, vocab, num_classes, cache_key, torch.get_num_threads())
                       for job in todo]
            for future in futures:
                future.result()
    models: dict[str, list[nn.Module]] = {v: [] for v in VARIANTS}
    cached = 0
    for job in jobs:
        model, hit = _fit_job(job, train, vocab, num_classes, device, cache_key)
        models[job[0]].append(model)
        cached += hit
    return models, cached - (len(todo) if len(todo) > 1 else 0)
