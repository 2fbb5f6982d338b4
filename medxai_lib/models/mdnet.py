"""MDNet (Zhang et al., CVPR 2017), small: an image model D with ensemble connections and a decoupled output,
an auxiliary attention sharpening module M, and an LSTM report generator L with class-conditioned attention.

Image model D (:class:`MDNetImage`): a stem then blocks ``F_m`` (conv-BN-ReLU-conv-BN). With *ensemble*
connections a block CONCATENATES its input (average-pooled where the block strides) and its output, so the
final map is ``C(I) = [y_1, F_1, ..., F_{L-1}]`` (pooled to one size) and the classifier's weights split into
per-block weights ``w_m^c``: ``p^c = sum_m w_m^c . GAP(F_m) + b^c`` (the paper's decoupled output). With
*additive* shortcuts (``connection="additive"``, ``y_{m+1} = pool(y_m) + F_m``) the final map is the sum of the
blocks and ONE weight vector ``w^c`` multiplies every block (the paper's "single weighting function").

AAS module M (:class:`AASModule`, parameters ``theta_M``): pools ``C(I)`` with a learned spatial attention and
classifies the diagnosis from the pooled vector; its class weights ``w^c`` give the class map
``c = (w^c)^T C(I)`` that enters the language model's attention. Trained through the diagnosis label.

Language model L (:class:`ReportLSTM`): ``h_t = LSTM([E x_{t-1}, z_t], h_{t-1})``, ``p(x_t) ∝ exp(G h_t)``,
attention ``a_t = softmax_ij(w_att . tanh(W_h h_{t-1} + W_f C_ij + v c_ij))``, context ``z_t = sum_ij a_t,ij C_ij``:
the class map shifts where words can look, ``h_{t-1}`` makes each word's attention its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONNECTIONS = ("ensemble", "additive")
BLOCKS = ((16, 2), (32, 2), (32, 2), (32, 1))  # (output channels, stride) per block


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _pool_to(x: torch.Tensor, side: int) -> torch.Tensor:
    """Average-pool ``(B, C, H, W)`` to ``side`` x ``side`` (H a multiple of side): the mean is unchanged."""
    k = x.shape[-1] // side
    return x if k == 1 else F.avg_pool2d(x, k)


class MDNetImage(nn.Module):
    """``(B, 3, S, S)`` -> logits ``(B, K)``; ``features(x)`` -> ``C(I)`` ``(B, D, S/8, S/8)``.

    ``connection="ensemble"``: ``y_{m+1} = [pool(y_m), F_m(y_m)]`` (D = width + sum of block widths);
    ``"additive"``: ``y_{m+1} = pool(y_m) + F_m(y_m)``, every block ``additive_width`` channels wide.
    """

    def __init__(self, num_classes: int = 4, width: int = 16, blocks: tuple[tuple[int, int], ...] = BLOCKS,
                 connection: str = "ensemble", additive_width: int = 35) -> None:
        super().__init__()
        if connection not in CONNECTIONS:
            raise ValueError(f"connection: expected one of {CONNECTIONS}, got {connection!r}")
        self.connection, self.strides = connection, [s for _, s in blocks]
        stem_width = width if connection == "ensemble" else additive_width
        self.stem = nn.Sequential(nn.Conv2d(3, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width), nn.ReLU())
        self.blocks = nn.ModuleList()
        channels, self.groups = stem_width, [stem_width]
        for cout, stride in blocks:
            cout = cout if connection == "ensemble" else additive_width
            self.blocks.append(_Block(channels, cout, stride))
            channels = channels + cout if connection == "ensemble" else channels
            self.groups.append(cout)
        self.out_channels = channels
        self.block_names = ["stem"] + [f"block{m}" for m in range(1, len(blocks) + 1)]
        self.classifier = nn.Linear(channels, num_classes)

    def block_outputs(self, x: torch.Tensor, merge_relu: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``([y_1, F_1, ..., F_{L-1}], C(I))``: the stem's and every block's output (each at its own
        resolution) and the final map. ``merge_relu=True`` puts a ReLU after every merge (as in the original
        ResNet), which breaks the decoupled output."""
        y = self.stem(x)
        outputs = [y]
        for block, stride in zip(self.blocks, self.strides):
            new = block(y)
            pooled = F.avg_pool2d(y, stride) if stride > 1 else y
            y = torch.cat([pooled, new], 1) if self.connection == "ensemble" else pooled + new
            y = F.relu(y) if merge_relu else y
            outputs.append(new)
        return outputs, y

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_outputs(x)[1]

    def forward(self, x: torch.Tensor, merge_relu: bool = False) -> torch.Tensor:
        return self.classifier(self.block_outputs(x, merge_relu)[1].mean((2, 3)))

    def block_weights(self) -> list[torch.Tensor]:
        """Per block, the classifier weights that multiply its features, ``(K, c_m)`` each: separate column
        groups ``w_m^c`` with ensemble connections, the same ``w^c`` for every block with additive shortcuts."""
        if self.connection == "additive":
            return [self.classifier.weight] * len(self.groups)
        return list(self.classifier.weight.split(self.groups, dim=1))

    def block_maps(self, x: torch.Tensor, classes: torch.Tensor, merge_relu: bool = False) -> torch.Tensor:
        """Per-block contribution maps to the score of ``classes (B,)``: ``(B, M, h, w)`` at the final
        resolution, ``w_m^c . pool(F_m)``; their spatial means sum (with the bias) to the class score."""
        outputs, final = self.block_outputs(x, merge_relu)
        side = final.shape[-1]
        maps = [torch.einsum("bc,bchw->bhw", w[classes], _pool_to(o, side))
                for w, o in zip(self.block_weights(), outputs)]
        return torch.stack(maps, 1)

    def block_contributions(self, x: torch.Tensor, merge_relu: bool = False) -> torch.Tensor:
        """Every block's contribution to every class score, ``(B, M, K)``: ``w_m^c . GAP(F_m)``."""
        outputs, _ = self.block_outputs(x, merge_relu)
        return torch.stack([o.mean((2, 3)) @ w.T for w, o in zip(self.block_weights(), outputs)], 1)


class AASModule(nn.Module):
    """The auxiliary attention sharpening module M: attention pooling of ``C(I)`` and a classifier.

    ``forward(feats (B, D, h, w))`` -> ``(logits (B, K), spatial attention (B, h*w))``; ``classifier.weight``
    (K, D) holds the ``w^c`` of the class map ``c = (w^c)^T C(I)``.
    """

    def __init__(self, feature_dim: int, num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Conv2d(feature_dim, hidden, 1), nn.Tanh(), nn.Conv2d(hidden, 1, 1))
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = torch.softmax(self.score(feats).flatten(1), 1)
        pooled = torch.einsum("bp,bdp->bd", alpha, feats.flatten(2))
        return self.classifier(pooled), alpha


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
    """Image model D + AAS module M + report generator L.

    ``forward(images, tokens)`` -> ``(class logits, word logits, attention, class map)``; ``diagnose(images)``
    -> class logits alone. ``aas=False`` drops M: the diagnosis and the class map then come from D's own
    GAP + FC classifier (the no-AAS ablation).
    """

    def __init__(self, vocab_size: int, num_classes: int = 4, width: int = 16, beta: float = 0.5, eta: float = 1.0,
                 aas: bool = True, **lm_kwargs: int) -> None:
        super().__init__()
        if not 0 <= beta <= 1:
            raise ValueError(f"beta: expected a weight in [0, 1], got {beta!r}")
        self.image = MDNetImage(num_classes, width)
        self.aas = AASModule(self.image.out_channels, num_classes) if aas else None
        self.language = ReportLSTM(vocab_size, self.image.out_channels, **lm_kwargs)
        self.beta, self.eta = beta, eta

    @property
    def class_weights(self) -> torch.Tensor:
        """The ``w^c`` of the class map, ``(K, D)``: M's classifier, or D's without AAS."""
        return (self.aas or self.image).classifier.weight

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` from ``C(I)``: through M (attention pooling) or D's GAP + FC."""
        return self.aas(feats)[0] if self.aas is not None else self.image.classifier(feats.mean((2, 3)))

    def class_map(self, feats: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``c = (w^c)^T C(I)`` for ``classes (B,)``: ``(B, h, w)``."""
        return torch.einsum("bd,bdhw->bhw", self.class_weights[classes], feats)

    def check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected (B, 3, S, S), got {getattr(images, 'shape', type(images))}")
        if images.shape[-1] % 8 or images.shape[-2] % 8 or images.shape[-1] < 32:
            raise ValueError(f"images: side must be a multiple of 8 and >= 32, got {tuple(images.shape[-2:])}")

    def diagnose(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` (no report)."""
        self.check_images(images)
        return self.classify(self.image.features(images))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(class logits (B, K), word logits (B, T-1, V), attention (B, T-1, h*w), cam (B, h, w))``."""
        self.check_images(images)
        if tokens.ndim != 2 or tokens.shape[1] < 2:
            raise ValueError(f"tokens: expected (B, T) with T >= 2 (<bos> and at least one word), got {tuple(tokens.shape)}")
        if tokens.max() >= self.language.vocab_size or tokens.min() < 0:
            raise ValueError(f"tokens: ids must lie in [0, {self.language.vocab_size}), got {tokens.min()}..{tokens.max()}")
        feats = self.image.features(images)
        class_logits = self.classify(feats)
        lm_feats = scale_grad(feats, self.beta * self.eta)
        cam = self.class_map(lm_feats, class_logits.argmax(1).detach())
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
        cam = self.class_map(feats, self.classify(feats).argmax(1))
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


def mdnet_loss(class_logits: torch.Tensor, labels: torch.Tensor, word_logits: torch.Tensor | None,
               tokens: torch.Tensor | None, beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Joint objective ``(1 - beta) L_M + L_L`` (``L_M`` alone when ``word_logits`` is None: image only).
    The image model's share of ``L_L`` is scaled to ``beta * eta`` inside :class:`MDNet` (gradient scaling), so
    the image model's gradient is ``(1 - beta) dL_M + beta eta dL_L`` as in the paper's update."""
    l_m = F.cross_entropy(class_logits, labels)
    if word_logits is None:
        return l_m, {"image": float(l_m.detach())}
    target = tokens[:, 1:]
    l_l = F.cross_entropy(word_logits.reshape(-1, word_logits.shape[-1]), target.reshape(-1), ignore_index=0)
    return (1 - beta) * l_m + l_l, {"image": float(l_m.detach()), "language": float(l_l.detach())}
