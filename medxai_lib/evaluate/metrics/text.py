"""Report-text metrics, written out (and cross-checked in tests against nltk, rouge-score, pycocoevalcap).

All take ``candidates``: list of token lists, and ``references``: list (per candidate) of lists of
token lists (several references per image, as MDNet's 5 reports). Per-image versions (``*_per_image``,
:func:`bleu_statistics`) give the values a bootstrap over images needs; :func:`meteor` runs the original
METEOR 1.5 jar that pycocoevalcap ships (Java required).
"""
from __future__ import annotations

import math
import shutil
from collections import Counter
from typing import Any, Sequence

import numpy as np

Tokens = Sequence[str]


def _ngrams(tokens: Tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _check_pairs(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> None:
    if len(candidates) != len(references) or not candidates:
        raise ValueError(f"candidates, references: expected equal non-zero lengths, got {len(candidates)}, {len(references)}")


def bleu_statistics(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], max_n: int = 4) -> np.ndarray:
    """Per candidate the sufficient statistics of corpus BLEU, ``(N, 2 max_n + 2)``: clipped n-gram matches
    for n = 1..max_n, n-gram totals, candidate length, closest reference length. Sums over any subset of
    rows give that subset's corpus BLEU (:func:`bleu_from_statistics`), so a bootstrap can resample images."""
    _check_pairs(candidates, references)
    rows = []
    for cand, refs in zip(candidates, references):
        row = []
        for n in range(1, max_n + 1):
            counts = _ngrams(cand, n)
            best: Counter = Counter()
            for r in refs:
                best |= _ngrams(r, n)
            row.append(sum(min(c, best[g]) for g, c in counts.items()))
        row += [max(len(cand) - n + 1, 0) for n in range(1, max_n + 1)]
        row += [len(cand), min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]]
        rows.append(row)
    return np.asarray(rows, dtype=float)


def bleu_from_statistics(stats: np.ndarray, n: int = 4) -> np.ndarray:
    """Corpus BLEU-n from :func:`bleu_statistics` rows: ``(N, d)`` -> scalar array, ``(B, N, d)`` -> ``(B,)``
    (usable as a claim ``statistic``)."""
    stats = np.asarray(stats, dtype=float)
    max_n = (stats.shape[-1] - 2) // 2
    if stats.shape[-1] != 2 * max_n + 2 or not 1 <= n <= max_n:
        raise ValueError(f"stats: expected (..., N, 2 max_n + 2) with max_n >= n={n}, got shape {stats.shape}")
    total = stats.sum(-2)
    matches, counts = total[..., :n], total[..., max_n:max_n + n]
    cand_len, ref_len = total[..., -2], total[..., -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        precisions = np.where(counts > 0, matches / np.maximum(counts, 1), 0.0)
        log_mean = np.log(np.maximum(precisions, 1e-300)).mean(-1)
        brevity = np.where(cand_len > ref_len, 1.0, np.exp(1 - ref_len / np.maximum(cand_len, 1)))
    return np.where(precisions.min(-1) > 0, brevity * np.exp(log_mean), 0.0)


def corpus_bleu(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], max_n: int = 4) -> dict[str, float]:
    """Corpus BLEU-1..max_n (Papineni et al. 2002): clipped n-gram precisions pooled over the corpus,
    geometric mean of orders 1..n, brevity penalty from the closest reference length."""
    stats = bleu_statistics(candidates, references, max_n)
    return {f"BLEU-{n}": float(bleu_from_statistics(stats, n)) for n in range(1, max_n + 1)}


def _lcs(a: Tokens, b: Tokens) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], beta: float = 1.0) -> float:
    """Mean over candidates of the best ROUGE-L F-measure against its references (Lin 2004)."""
    return float(rouge_l_per_image(candidates, references, beta).mean())


def rouge_l_per_image(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], beta: float = 1.0
                      ) -> np.ndarray:
    """Per candidate, the best ROUGE-L F-measure against its references, ``(N,)``."""
    _check_pairs(candidates, references)
    scores = []
    for cand, refs in zip(candidates, references):
        best = 0.0
        for ref in refs:
            lcs = _lcs(cand, ref)
            if lcs == 0:
                continue
            p, r = lcs / len(cand), lcs / len(ref)
            best = max(best, (1 + beta ** 2) * p * r / (r + beta ** 2 * p))
        scores.append(best)
    return np.asarray(scores)


def cider_d(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], max_n: int = 4,
            sigma: float = 6.0) -> float:
    """CIDEr-D (Vedantam et al. 2015) as in the COCO evaluation code: TF-IDF n-gram vectors with document
    frequencies from the references, clipped candidate counts, Gaussian length penalty, x10, mean over n."""
    return float(cider_d_per_image(candidates, references, max_n, sigma).mean())


def cider_d_per_image(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], max_n: int = 4,
                      sigma: float = 6.0) -> np.ndarray:
    """Per-image CIDEr-D, ``(N,)`` (document frequencies from all images' references); its mean is
    :func:`cider_d`."""
    _check_pairs(candidates, references)
    n_images = len(references)
    doc_freq: Counter = Counter()
    for refs in references:
        doc_freq.update({g for r in refs for n in range(1, max_n + 1) for g in _ngrams(r, n)})
    log_n = math.log(float(n_images))

    def vec(tokens: Tokens) -> tuple[list[dict], list[float], int]:
        vecs, norms = [], []
        for n in range(1, max_n + 1):
            v = {g: tf * (log_n - math.log(max(1.0, doc_freq[g]))) for g, tf in _ngrams(tokens, n).items()}
            vecs.append(v)
            norms.append(math.sqrt(sum(x * x for x in v.values())))
        return vecs, norms, len(tokens)

    scores = []
    for cand, refs in zip(candidates, references):
        cv, cn, cl = vec(cand)
        total = [0.0] * max_n
        for ref in refs:
            rv, rn, rl = vec(ref)
            for n in range(max_n):
                dot = sum(min(val, rv[n][g]) * rv[n][g] for g, val in cv[n].items() if g in rv[n])
                if cn[n] and rn[n]:
                    total[n] += dot / (cn[n] * rn[n]) * math.exp(-((cl - rl) ** 2) / (2 * sigma ** 2))
        scores.append(sum(t / len(refs) for t in total) / max_n * 10.0)
    return np.asarray(scores)


def meteor_available() -> bool:
    """Whether :func:`meteor` can run here (pycocoevalcap's METEOR 1.5 jar and a ``java`` on the PATH)."""
    import importlib.util
    return shutil.which("java") is not None and importlib.util.find_spec("pycocoevalcap") is not None


def meteor(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> tuple[float, np.ndarray]:
    """METEOR 1.5 (Denkowski & Lavie 2014; exact, stem, synonym and paraphrase matches, English defaults) as
    in the COCO caption evaluation: ``(corpus score, per-image scores (N,))``. Runs pycocoevalcap's jar
    (about 15 s to start Java and load its paraphrase table). Raises RuntimeError without Java."""
    return meteor_systems({"": candidates}, references)[""]


def start_meteor() -> Any:
    """Start METEOR 1.5's Java process now and return it: the jar loads its paraphrase table (about 7 s on one
    core) in the background while Python goes on; pass it to :func:`meteor_systems` (``scorer``), which uses it
    and shuts it down. Raises RuntimeError without Java."""
    if not meteor_available():
        raise RuntimeError("meteor: needs `java` on the PATH and pycocoevalcap (its METEOR 1.5 jar)")
    from pycocoevalcap.meteor.meteor import Meteor
    return Meteor()


def meteor_systems(systems: dict[str, Sequence[Tokens]], references: Sequence[Sequence[Tokens]],
                   scorer: Any = None) -> dict[str, tuple[float, np.ndarray]]:
    """:func:`meteor` for several systems against the same references, in ONE Java process: ``scorer`` from
    :func:`start_meteor` (started earlier, so its start-up overlaps other work), or a new one when it is None or
    has already been shut down. The process is shut down afterwards."""
    for name, candidates in systems.items():
        _check_pairs(candidates, references)
    if scorer is None or scorer.meteor_p.poll() is not None:
        scorer = start_meteor()
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(references)}
    out = {}
    try:
        for name, candidates in systems.items():
            score, scores = scorer.compute_score(gts, {i: [" ".join(c)] for i, c in enumerate(candidates)})
            out[name] = (float(score), np.asarray(scores, dtype=float))
    finally:
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
    return out
