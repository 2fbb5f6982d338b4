"""Report-text metrics, written out (and cross-checked in tests against nltk, rouge-score, pycocoevalcap).

All take ``candidates``: list of token lists, and ``references``: list (per candidate) of lists of
token lists (several references per image, as MDNet's 5 reports).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

Tokens = Sequence[str]


def _ngrams(tokens: Tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], max_n: int = 4) -> dict[str, float]:
    """Corpus BLEU-1..max_n (Papineni et al. 2002): clipped n-gram precisions pooled over the corpus,
    geometric mean of orders 1..n, brevity penalty from the closest reference length."""
    if len(candidates) != len(references) or not candidates:
        raise ValueError(f"candidates, references: expected equal non-zero lengths, got {len(candidates)}, {len(references)}")
    matches, totals = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        cand_len += len(cand)
        ref_len += min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(cand, n)
            best: Counter = Counter()
            for r in refs:
                best |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(cand) - n + 1, 0)
    brevity = 1.0 if cand_len > ref_len else math.exp(1 - ref_len / max(cand_len, 1))
    out = {}
    for n in range(1, max_n + 1):
        precisions = [matches[k] / totals[k] if totals[k] else 0.0 for k in range(n)]
        out[f"BLEU-{n}"] = brevity * math.exp(sum(math.log(p) for p in precisions) / n) if min(precisions) > 0 else 0.0
    return out


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
    return sum(scores) / len(scores)


def cider_d(candidates: Sequence[Tokens], references: Sequence[Sequence[Tokens]], max_n: int = 4,
            sigma: float = 6.0) -> float:
    """CIDEr-D (Vedantam et al. 2015) as in the COCO evaluation code: TF-IDF n-gram vectors with document
    frequencies from the references, clipped candidate counts, Gaussian length penalty, x10, mean over n."""
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
    return sum(scores) / len(scores)
