"""One fit loop for every notebook: progress bar, validation metrics, checkpoint cache by config hash."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medxai_lib.models.metrics import grade_kappa
from medxai_lib.models.inference import images_and_labels, predict_logits, probabilities
from medxai_lib.runtime import (atomic_write, cache_dir, check_memory_format, config_hash, in_memory_format, progress,
                                resolve_device, seed_everything)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`fit` (all part of the cache key)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 1e-4
    seed: int = 0
    pos_weight: float | None = None  # BCE weight of positives (one-output models)
    schedule: str = "cosine"         # "cosine" (anneal lr to 0 over the run, stable last epoch) or "constant"
    objective: str = "auto"          # "auto": BCE for one output, cross-entropy otherwise; "regression": MSE
    memory_format: str = "contiguous"  # "channels_last": the same training, 1.4x faster for conv nets on a CPU
    validate: str = "epoch"          # "epoch": validation metrics after every epoch; "last": after the last only
                                     # (the same weights; for recipes that read only the final metrics)

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs: expected an int >= 0, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive float, got {self.lr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {self.batch_size!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule: expected 'cosine' or 'constant', got {self.schedule!r}")
        if self.objective not in ("auto", "regression"):
            raise ValueError(f"objective: expected 'auto' or 'regression', got {self.objective!r}")
        check_memory_format(self.memory_format)
        if self.validate not in ("epoch", "last"):
            raise ValueError(f"validate: expected 'epoch' or 'last', got {self.validate!r}")


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    from_cache: bool = False
    checkpoint: Path | None = None


def _loss_fn(num_outputs: int, config: TrainConfig, device: torch.device) -> nn.Module:
    if config.objective == "regression":
        if num_outputs != 1:
            raise ValueError(f"objective: 'regression' needs a one-output model, got {num_outputs} outputs")
        return nn.MSELoss()
    if num_outputs == 1:
        pos_weight = None if config.pos_weight is None else torch.tensor([config.pos_weight], device=device)
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    return nn.CrossEntropyLoss()


def _batch_loss(model: nn.Module, batch: dict[str, Any], loss_fn: nn.Module, device: torch.device,
                memory_format: str = "contiguous") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels = in_memory_format(batch["image"].to(device), memory_format), batch["label"].to(device)
    logits = model(images)
    if logits.shape[1] == 1:
        return loss_fn(logits[:, 0], labels.float()), logits, labels  # BCE or MSE: float targets
    return loss_fn(logits, labels), logits, labels


def _validate(model: nn.Module, data: Dataset, loss_fn: nn.Module, device: torch.device, batch_size: int
              ) -> dict[str, float]:
    logits = predict_logits(model, data, batch_size, device)
    labels = torch.as_tensor(np.asarray(data.labels) if hasattr(data, "labels") else
                             [int(data[i]["label"]) for i in range(len(data))])
    if isinstance(loss_fn, nn.MSELoss):
        loss = float(loss_fn(logits[:, 0].to(device), labels.float().to(device)))
        return {"val_loss": loss, "val_kappa": grade_kappa(logits[:, 0].numpy(), labels.numpy())}
    if logits.shape[1] == 1:
        loss = float(loss_fn(logits[:, 0].to(device), labels.float().to(device)))
        probs = probabilities(logits)
        row = {"val_loss": loss, "val_accuracy": float(((probs > 0.5) == labels.numpy()).mean())}
        if len(np.unique(labels.numpy())) == 2:
            row["val_auroc"] = float(roc_auc_score(labels.numpy(), probs))
        return row
    loss = float(loss_fn(logits.to(device), labels.to(device)))
    return {"val_loss": loss, "val_accuracy": float((logits.argmax(1) == labels).float().mean())}


def weights_digest(model: nn.Module) -> str:
    """Short hash of every tensor in the state dict (the initial weights are part of each cache key, so two
    inits of one architecture never share a checkpoint)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def checkpoint_path(model: nn.Module, config: TrainConfig, cache_key: dict[str, Any]) -> Path:
    """Where :func:`fit` caches ``model`` (its architecture and initial weights) trained with ``config`` on the
    data described by ``cache_key``."""
    train = asdict(config)
    for name, default in (("objective", "auto"), ("validate", "epoch")):
        if train[name] == default:         # keys of models trained before the field existed stay valid
            del train[name]
    key = {"model": type(model).__name__, "architecture": repr(model), "init": weights_digest(model),
           "parameters": sum(p.numel() for p in model.parameters()), "train": train, "data": cache_key}
    return cache_dir() / "checkpoints" / f"{type(model).__name__.lower()}-{config_hash(key)}.pt"


def fit(model: nn.Module, train_data: Dataset, val_data: Dataset | None = None,
        config: TrainConfig = TrainConfig(), device: str | torch.device = "auto",
        cache_key: dict[str, Any] | None = None, show_progress: bool | None = None) -> FitResult:
    """Train ``model`` (Adam, BCE for one output, cross-entropy otherwise) and return it in eval mode.

    Items of the datasets are dicts with ``image`` (C, H, W) and ``label``. With ``cache_key`` (a
    JSON-able description of the data), weights and history are cached under
    ``cache_dir()/checkpoints`` by a hash of model, config and key; a second call loads them.
    """
    if len(train_data) == 0:
        raise ValueError("train_data: empty dataset")
    device = resolve_device(device)
    model.to(device)
    path = checkpoint_path(model, config, cache_key) if cache_key is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(saved["state_dict"])
        return FitResult(model.eval(), json.loads(saved["history"]), from_cache=True, checkpoint=path)
    seed_everything(config.seed)
    rank, world = distributed_rank_and_size()
    loader, sampler = _train_loader(train_data, config, rank, world)
    in_memory_format(model, config.memory_format)   # before DDP registers the parameters
    trained = model
    if world > 1:   # torchrun: gradients averaged across processes, each process sees its shard of the data
        from torch.nn.parallel import DistributedDataParallel
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = max(1, config.epochs * len(loader))
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
                 if config.schedule == "cosine" else None)
    with torch.no_grad():
        num_outputs = model(train_data[0]["image"][None].to(device)).shape[1]
    loss_fn = _loss_fn(num_outputs, config, device)
    history: list[dict[str, float]] = []
    for epoch in progress(range(config.epochs), enabled=show_progress if rank == 0 else False, desc="epochs"):
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
        total, seen = 0.0, 0
        for batch in loader:
            loss, _, labels = _batch_loss(trained, batch, loss_fn, device, config.memory_format)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        row = {"epoch": epoch + 1, "train_loss": total / seen}
        if val_data is not None and len(val_data):
            if config.validate == "epoch" or epoch == config.epochs - 1:
                row.update(_validate(model, val_data, loss_fn, device, config.batch_size * 2))
            else:   # a validation's DataLoader draws its base seed from the global RNG: draw it too, so that dropout
                torch.empty((), dtype=torch.int64).random_()   # in the next epoch sees the stream it would have seen
        history.append(row)
    in_memory_format(model, "contiguous")       # explanations reshape activations: hand back the usual layout
    model.eval()
    if path is not None and rank == 0:     # one writer; BatchNorm running statistics are rank 0's
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_write(path, lambda tmp: torch.save({"state_dict": state, "history": json.dumps(history)}, tmp))
    if world > 1:
        torch.distributed.barrier()
    return FitResult(model, history, from_cache=False, checkpoint=path)


def distributed_rank_and_size() -> tuple[int, int]:
    """``(rank, world size)`` of an initialised ``torch.distributed`` process group, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _train_loader(train_data: Dataset, config: TrainConfig, rank: int, world: int
                  ) -> tuple[DataLoader, torch.utils.data.DistributedSampler | None]:
    """Shuffled batches; under DDP a ``DistributedSampler`` gives each rank its own shard (reshuffled per epoch)."""
    if world > 1:
        from torch.utils.data import DistributedSampler
        sampler = DistributedSampler(train_data, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
        return DataLoader(train_data, batch_size=config.batch_size, sampler=sampler,
                          collate_fn=images_and_labels), sampler
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(train_data, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False,
                      collate_fn=images_and_labels), None
