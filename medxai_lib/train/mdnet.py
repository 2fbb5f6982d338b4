"""Training MDNet on reports: the joint objective, cached by config hash like :func:`medxai_lib.train.fit`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medxai_lib.data.phantoms.histology import Vocabulary
from medxai_lib.models.mdnet import MDNet, mdnet_loss
from medxai_lib.runtime import atomic_write, cache_dir, config_hash, progress, resolve_device, seed_everything


@dataclass(frozen=True)
class MDNetConfig:
    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 32
    beta: float = 0.5
    eta: float = 1.0
    aas_weight: float = 0.0
    max_len: int = 48
    reports_per_image: int = 5     # reports used per image and epoch (the first k of its 5)
    seed: int = 0


class ReportPairs(Dataset):
    """(image, one of its reports as token ids, label) pairs: every image once per report."""

    def __init__(self, dataset: Dataset, vocab: Vocabulary, max_len: int, reports_per_image: int = 5) -> None:
        self.dataset, self.vocab, self.max_len = dataset, vocab, max_len
        self.index = [(i, r) for i in range(len(dataset)) for r in range(min(reports_per_image, len(dataset.reports[i])))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i, r = self.index[k]
        item = self.dataset[i]
        return {"image": item["image"], "label": item["label"],
                "tokens": torch.tensor(self.vocab.encode(self.dataset.reports[i][r], self.max_len))}


def fit_mdnet(train: Dataset, vocab: Vocabulary, config: MDNetConfig = MDNetConfig(), num_classes: int = 4,
              device: str = "auto", cache_key: dict[str, Any] | None = None, show_progress: bool | None = None
              ) -> tuple[MDNet, list[dict[str, float]], bool]:
    """Train an :class:`MDNet` on a dataset with ``reports``; returns ``(model, history, from_cache)``."""
    device = resolve_device(device)
    seed_everything(config.seed)
    model = MDNet(len(vocab), num_classes, beta=config.beta, eta=config.eta).to(device)
    path = None
    if cache_key is not None:
        key = {"config": asdict(config), "data": cache_key, "vocab": vocab.itos, "arch": repr(model)}
        path = cache_dir() / "checkpoints" / f"mdnet-{config_hash(key)}.pt"
        if path.exists():
            saved = torch.load(path, map_location=device, weights_only=True)
            model.load_state_dict(saved["state_dict"])
            return model.eval(), json.loads(saved["history"]), True
    loader = DataLoader(ReportPairs(train, vocab, config.max_len, config.reports_per_image), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, config.epochs * len(loader)))
    history = []
    for epoch in progress(range(config.epochs), enabled=show_progress, desc="epochs"):
        model.train()
        sums: dict[str, float] = {}
        for batch in loader:
            images, labels, tokens = batch["image"].to(device), batch["label"].to(device), batch["tokens"].to(device)
            class_logits, word_logits, attention, cam = model(images, tokens)
            loss, parts = mdnet_loss(class_logits, labels, word_logits, tokens, attention, cam, config.beta,
                                     config.aas_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v / len(loader)
        history.append({"epoch": epoch + 1, **sums})
    model.eval()
    if path is not None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_write(path, lambda tmp: torch.save({"state_dict": state, "history": json.dumps(history)}, tmp))
    return model, history, False


def report_log_likelihood(model: MDNet, images: torch.Tensor, vocab: Vocabulary, text: str, batch_size: int = 64
                          ) -> np.ndarray:
    """``log p(text | image)`` per image, teacher-forced (retrieval by symptom description), ``(N,)``."""
    ids = torch.tensor(vocab.encode(text))
    if (ids == vocab.stoi["<unk>"]).any():
        unknown = [w for w in text.lower().split() if w not in vocab.stoi]
        raise ValueError(f"text: words not in the vocabulary: {unknown}")
    out = []
    model.eval()
    with torch.no_grad():
        for part in images.split(batch_size):
            tokens = ids.expand(len(part), -1).to(part.device)
            _, word_logits, _, _ = model(part, tokens)
            logp = torch.log_softmax(word_logits, -1).gather(2, tokens[:, 1:, None])[..., 0]
            out.append(logp.sum(1).cpu())
    return torch.cat(out).numpy()
