"""MDNet (Zhang et al., CVPR 2017), small: an image model with ensemble connections and a decoupled
output, an LSTM report generator with class-conditioned attention, and auxiliary attention sharpening.

Image model: residual stages whose shape-changing block CONCATENATES the (average-pooled) shortcut and
the new residual channels instead of adding them. The shortcut path is linear (pooling only), so the final
feature map is exactly a sum of per-block parts, and the class score decouples into per-block
contributions (:meth:`MDNetImage.decoupled_output`).

Language model: ``h_t = LSTM([E x_{t-1}, z_t], h_{t-1})``, ``p(x_t) ∝ exp(G h_t)``, attention
``a_t = softmax_ij(w_att · tanh(W_h h_{t-1} + W_f C_ij + v · cam_ij))`` with ``cam = (w^c)^T C(I)`` the
class-weighted feature map, context ``z_t = sum_ij a_t,ij C_ij``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MDNetImage(nn.Module):
    """``(B, 3, S, S)`` -> logits ``(B, K)``; ``features(x)`` -> ``C(I)`` ``(B, D, S/8, S/8)``.

    Each stage: an *ensemble* block (stride 2; output = concat(avgpool(x), residual)) then an identity
    residual block (x + F(x)).
    """

    def __init__(self, num_classes: int = 4, width: int = 16, growth: tuple[int, ...] = (16, 32, 32)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        channels = width
        self.ensemble, self.identity = nn.ModuleList(), nn.ModuleList()
        for g in growth:
            self.ensemble.append(_Residual(channels, g, 2))
            channels += g
            self.identity.append(_Residual(channels, channels, 1))
        self.out_channels = channels
        self.classifier = nn.Linear(channels, num_classes)

    def parts(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The additive parts of the final feature map, each ``(B, D, h, w)`` (zero outside its channels)."""
        y = self.stem(x)
        parts = [("stem", y)]
        for m, (ens, ident) in enumerate(zip(self.ensemble, self.identity), start=1):
            new = ens(y)
            pooled = [(name, F.avg_pool2d(p, 2)) for name, p in parts]
            pad = new.shape[1]
            parts = [(name, F.pad(p, (0, 0, 0, 0, 0, pad))) for name, p in pooled]
            parts.append((f"ensemble{m}", F.pad(new, (0, 0, 0, 0, y.shape[1], 0))))
            y = torch.cat([F.avg_pool2d(y, 2), new], 1)
            residual = ident(y)
            parts.append((f"residual{m}", residual))
            y = y + residual
        return parts

    def features(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        for ens, ident in zip(self.ensemble, self.identity):
            y = torch.cat([F.avg_pool2d(y, 2), ens(y)], 1)
            y = y + ident(y)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))

    def decoupled_output(self, x: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Per-part contributions to each class score: ``(names, (B, P, K))``; their sum over P plus the
        classifier bias equals the logits (the paper's decoupled output)."""
        parts = self.parts(x)
        contributions = torch.stack([p.mean((2, 3)) @ self.classifier.weight.T for _, p in parts], 1)
        return [n for n, _ in parts], contributions


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: ANN001
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN205, ANN001
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; gradient multiplied by ``scale`` backward (the paper's beta*eta on the image model)."""
    return _ScaleGrad.apply(x, scale)


class ReportLSTM(nn.Module):
    """LSTM with class-conditioned spatial attention over ``C(I)``."""

    def __init__(self, vocab_size: int, feature_dim: int, embed: int = 64, hidden: int = 128,
                 attn: int = 64) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.cell = nn.LSTMCell(embed + feature_dim, hidden)
        self.init_h, self.init_c = nn.Linear(feature_dim, hidden), nn.Linear(feature_dim, hidden)
        self.w_h, self.w_f = nn.Linear(hidden, attn), nn.Conv2d(feature_dim, attn, 1)
        self.v_cam = nn.Parameter(torch.zeros(attn))
        self.w_att = nn.Linear(attn, 1)
        self.out = nn.Linear(hidden, vocab_size)                      # G

    def start(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = feats.mean((2, 3))
        return torch.tanh(self.init_h(pooled)), torch.tanh(self.init_c(pooled))

    def step(self, token: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], feats: torch.Tensor,
             proj_f: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """One word: ``token (B,)`` -> ``(logits (B, V), new state, attention (B, h*w))``."""
        h, c = state
        energy = self.w_att(torch.tanh(self.w_h(h)[:, None] + proj_f + cam[..., None] * self.v_cam)).squeeze(-1)
        attention = torch.softmax(energy, 1)                                      # (B, hw)
        context = torch.einsum("bp,bpd->bd", attention, feats.flatten(2).transpose(1, 2))
        h, c = self.cell(torch.cat([self.embed(token), context], 1), (h, c))
        return self.out(h), (h, c), attention

    def prepare(self, feats: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        proj_f = self.w_f(feats).flatten(2).transpose(1, 2)                      # (B, hw, A)
        cam = cam.flatten(1)
        cam = (cam - cam.mean(1, keepdim=True)) / (cam.std(1, keepdim=True) + 1e-6)
        return proj_f, cam

    def forward(self, feats: torch.Tensor, cam: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing. ``tokens (B, T)`` starting with <bos>; returns ``(logits (B, T-1, V),
        attention (B, T-1, h*w))`` predicting ``tokens[:, 1:]``."""
        proj_f, cam_n = self.prepare(feats, cam)
        state = self.start(feats)
        logits, attn = [], []
        for t in range(tokens.shape[1] - 1):
            out, state, a = self.step(tokens[:, t], state, feats, proj_f, cam_n)
            logits.append(out)
            attn.append(a)
        return torch.stack(logits, 1), torch.stack(attn, 1)


class MDNet(nn.Module):
    """Image model + report generator. ``forward(images, tokens)`` -> ``(class logits, word logits, attention)``."""

    def __init__(self, vocab_size: int, num_classes: int = 4, width: int = 16, beta: float = 0.5, eta: float = 1.0,
                 **lm_kwargs: int) -> None:
        super().__init__()
        if not 0 <= beta <= 1:
            raise ValueError(f"beta: expected a weight in [0, 1], got {beta!r}")
        self.image = MDNetImage(num_classes, width)
        self.language = ReportLSTM(vocab_size, self.image.out_channels, **lm_kwargs)
        self.beta, self.eta = beta, eta

    def class_map(self, feats: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``c = (w^c)^T C(I)``: the CAM of ``classes (B,)``, ``(B, h, w)``."""
        return torch.einsum("bd,bdhw->bhw", self.image.classifier.weight[classes], feats)

    def check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected (B, 3, S, S), got {getattr(images, 'shape', type(images))}")
        if images.shape[-1] % 8 or images.shape[-2] % 8 or images.shape[-1] < 32:
            raise ValueError(f"images: side must be a multiple of 8 and >= 32, got {tuple(images.shape[-2:])}")

    def forward(self, images: torch.Tensor, tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(class logits (B, K), word logits (B, T-1, V), attention (B, T-1, h*w), cam (B, h, w))``."""
        self.check_images(images)
        if tokens.ndim != 2 or tokens.shape[1] < 2:
            raise ValueError(f"tokens: expected (B, T) with T >= 2 (<bos> and at least one word), got {tuple(tokens.shape)}")
        if tokens.max() >= self.language.vocab_size or tokens.min() < 0:
            raise ValueError(f"tokens: ids must lie in [0, {self.language.vocab_size}), got {tokens.min()}..{tokens.max()}")
        feats = self.image.features(images)
        class_logits = self.image.classifier(feats.mean((2, 3)))
        lm_feats = scale_grad(feats, self.beta * self.eta)
        predicted = class_logits.argmax(1).detach()
        cam = self.class_map(lm_feats, predicted)
        word_logits, attention = self.language(lm_feats, cam, tokens)
        return class_logits, word_logits, attention, cam

    @torch.no_grad()
    def generate(self, images: torch.Tensor, bos: int, eos: int, max_len: int = 60, beam: int = 1
                 ) -> tuple[list[list[int]], list[torch.Tensor]]:
        """Decode a report per image (greedy for ``beam=1``, else beam search of that width).
        Returns the token ids (without <bos>/<eos>) and, per image, the attention ``(len, h, w)`` of each word."""
        self.check_images(images)
        if beam < 1:
            raise ValueError(f"beam: expected a positive int, got {beam!r}")
        was = self.training
        self.eval()
        feats = self.image.features(images)
        h, w = feats.shape[-2:]
        cam = self.class_map(feats, self.image.classifier(feats.mean((2, 3))).argmax(1))
        if beam == 1:
            results, attentions = self._greedy(feats, cam, bos, eos, max_len)
            self.train(was)
            return results, [a.view(-1, h, w) for a in attentions]
        results, attentions = [], []
        for b in range(len(images)):
            tokens, attn = self._beam(feats[b:b + 1], cam[b:b + 1], bos, eos, max_len, beam)
            results.append(tokens)
            attentions.append(attn.view(-1, h, w) if len(attn) else torch.zeros(0, h, w))
        self.train(was)
        return results, attentions

    def _greedy(self, feats: torch.Tensor, cam: torch.Tensor, bos: int, eos: int, max_len: int
                ) -> tuple[list[list[int]], list[torch.Tensor]]:
        """Batched greedy decoding (equals beam search with width 1)."""
        lm = self.language
        proj_f, cam_n = lm.prepare(feats, cam)
        state = lm.start(feats)
        token = torch.full((len(feats),), bos, dtype=torch.long, device=feats.device)
        steps, atts = [], []
        done = torch.zeros(len(feats), dtype=torch.bool, device=feats.device)
        for _ in range(max_len):
            logits, state, a = lm.step(token, state, feats, proj_f, cam_n)
            token = logits.argmax(1)
            steps.append(token)
            atts.append(a)
            done |= token == eos
            if done.all():
                break
        tokens, attn = torch.stack(steps, 1).tolist(), torch.stack(atts, 1)
        results, attentions = [], []
        for b, seq in enumerate(tokens):
            length = seq.index(eos) if eos in seq else len(seq)
            results.append(seq[:length])
            attentions.append(attn[b, :length])
        return results, attentions

    def _beam(self, feats: torch.Tensor, cam: torch.Tensor, bos: int, eos: int, max_len: int, width: int
              ) -> tuple[list[int], torch.Tensor]:
        lm = self.language
        proj_f, cam_n = lm.prepare(feats, cam)
        beams = [(0.0, [bos], lm.start(feats), [])]          # (log p, tokens, state, attentions)
        finished = []
        for _ in range(max_len):
            candidates = []
            for score, toks, state, atts in beams:
                logits, new_state, a = lm.step(torch.tensor([toks[-1]]), state, feats, proj_f, cam_n)
                logp = torch.log_softmax(logits[0], -1)
                top = logp.topk(width)
                for lp, tok in zip(top.values.tolist(), top.indices.tolist()):
                    candidates.append((score + lp, toks + [tok], new_state, atts + [a[0]]))
            candidates.sort(key=lambda c: -c[0])
            beams = []
            for cand in candidates[:width]:
                (finished if cand[1][-1] == eos else beams).append(cand)
            if not beams or (finished and max(f[0] for f in finished) >= beams[0][0]):
                break
        best = max(finished + beams, key=lambda c: c[0])
        tokens = [t for t in best[1][1:] if t != eos]
        atts = best[3][:len(tokens)]
        return tokens, torch.stack(atts) if atts else torch.zeros(0, cam.numel())


def mdnet_loss(class_logits: torch.Tensor, labels: torch.Tensor, word_logits: torch.Tensor, tokens: torch.Tensor,
               attention: torch.Tensor, cam: torch.Tensor | None, beta: float, aas_weight: float = 0.0
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """Joint objective ``(1 - beta) L_M + L_L (+ aas_weight * L_AAS)``. The image model's share of L_L is
    scaled to ``beta * eta`` inside :class:`MDNet` (gradient scaling), so the total gradient on the image
    model is ``(1 - beta) dL_M + beta eta dL_L`` as in the paper's update, up to the common factor.
    L_AAS (auxiliary attention sharpening): KL from the class map's spatial softmax to each step's attention."""
    l_m = F.cross_entropy(class_logits, labels)
    target = tokens[:, 1:]
    l_l = F.cross_entropy(word_logits.reshape(-1, word_logits.shape[-1]), target.reshape(-1), ignore_index=0)
    total = (1 - beta) * l_m + l_l
    parts = {"image": float(l_m.detach()), "language": float(l_l.detach())}
    if aas_weight > 0 and cam is not None:
        reference = torch.softmax(cam.flatten(1), 1).detach()                 # (B, hw)
        mask = (target > 0).float()                                          # real words only
        kl = (reference[:, None] * (reference[:, None].clamp_min(1e-12).log() - attention.clamp_min(1e-12).log())).sum(-1)
        l_aas = (kl * mask).sum() / mask.sum().clamp_min(1)
        total = total + aas_weight * l_aas
        parts["aas"] = float(l_aas.detach())
    return total, parts
