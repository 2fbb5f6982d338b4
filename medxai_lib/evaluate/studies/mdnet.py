"""Evaluating generated reports: attribute accuracy, retrieval, and where each attribute word looks."""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medxai_lib.data.phantoms.histology import ATTRIBUTE_WORDS, ATTRIBUTES, Vocabulary, parse_report, tokenize


def attribute_accuracy(reports: Sequence[str], grades: np.ndarray) -> "pandas.Series":
    """Per attribute, the share of reports whose sentence states the true grade (a missing sentence is wrong).
    ``grades (N, 5)`` in the order of :data:`ATTRIBUTES`."""
    import pandas as pd
    parsed = [parse_report(r)[0] for r in reports]
    return pd.Series({a: float(np.mean([p.get(a, -1) == g for p, g in zip(parsed, grades[:, k])]))
                      for k, a in enumerate(ATTRIBUTES)}, name="attribute accuracy")


def retrieval_scores(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> dict[str, float]:
    """Precision@k and average precision of a ranking by ``scores`` (higher first) against ``relevant``."""
    from sklearn.metrics import average_precision_score
    relevant = np.asarray(relevant).astype(bool)
    if not relevant.any():
        raise ValueError("relevant: no relevant item; precision and AP are undefined")
    order = np.argsort(-np.asarray(scores), kind="stable")
    return {f"P@{k}": float(relevant[order[:k]].mean()), "AP": float(average_precision_score(relevant, scores))}


_SEVERE = {"severe", "severely", "frequent", "very", "completely", "complete", "densely", "markedly", "most"}
_MILD = {"mild", "mildly", "rare", "occasional", "some", "partially"}
_NONE = {"no", "not", "uniform", "absent", "preserved", "inconspicuous", "normal", "regular"}


def symptom_query(text: str) -> dict[str, set[int]]:
    """Free-text symptom description -> the attribute grades it asks for, e.g. ``"severe nuclear
    pleomorphism"`` -> ``{"pleomorphism": {2}}``; ``"crowded cells with prominent nucleoli"`` ->
    ``{"crowding": {1, 2}, "nucleoli": {1, 2}}`` (an unqualified abnormal finding means mild or severe)."""
    words = tokenize(text)
    word_to_attr = {w: a for a, ws in ATTRIBUTE_WORDS.items() for w in ws} | {"nuclear": None, "prominent": None}
    wanted: dict[str, set[int]] = {}
    for i, word in enumerate(words):
        attribute = word_to_attr.get(word)
        if attribute is None:
            continue
        window = set(words[max(0, i - 2):i + 3])
        grades = {2} if window & _SEVERE else {1} if window & _MILD else {0} if window & _NONE else {1, 2}
        wanted[attribute] = wanted.get(attribute, set()) | grades
    if not wanted:
        raise ValueError(f"text: no attribute named in {text!r}; use words such as "
                         f"{sorted(w for ws in ATTRIBUTE_WORDS.values() for w in ws)}")
    return wanted


def retrieve_by_symptoms(text: str, reports: Sequence[str], abnormal_probability: np.ndarray | None = None
                         ) -> np.ndarray:
    """Score each image for a symptom query by how many asked-for attribute grades its generated report
    states (ties broken by the model's abnormal probability). Higher = more relevant. ``(N,)``."""
    wanted = symptom_query(text)
    parsed = [parse_report(r)[0] for r in reports]
    score = np.array([sum(p.get(a, -1) in grades for a, grades in wanted.items()) for p in parsed], dtype=float)
    if abnormal_probability is not None:
        score = score + 0.1 * np.asarray(abnormal_probability, dtype=float)
    return score


def relevant_images(text: str, grades: np.ndarray) -> np.ndarray:
    """Ground truth for a query: images whose true grades satisfy every asked-for attribute, ``(N,)`` bool."""
    wanted = symptom_query(text)
    return np.all([np.isin(grades[:, ATTRIBUTES.index(a)], list(g)) for a, g in wanted.items()], axis=0)


# ---- report baselines ---------------------------------------------------------------------------------------
def _sentences(report: str) -> list[str]:
    return [s.strip() for s in " ".join(tokenize(report)).split(".") if s.strip()]


def modal_report(reports: Sequence[Sequence[str]]) -> str:
    """The most frequent sentence at each position over ``reports`` (per image, its list of reports): the
    best single 'template' for those images. Ties go to the sentence seen first."""
    if not reports:
        raise ValueError("reports: expected at least one image's reports")
    by_position: dict[int, Counter] = {}
    for per_image in reports:
        for report in per_image:
            for k, sentence in enumerate(_sentences(report)):
                by_position.setdefault(k, Counter())[sentence] += 1
    return " . ".join(by_position[k].most_common(1)[0][0] for k in sorted(by_position)) + " ."


def class_templates(reports: Sequence[Sequence[str]], labels: np.ndarray, num_classes: int) -> list[str]:
    """One :func:`modal_report` per class (from the training images of that class), a list of length
    ``num_classes``; a class without images gets the modal report of all images."""
    labels = np.asarray(labels)
    overall = modal_report(reports)
    return [modal_report([reports[i] for i in np.flatnonzero(labels == c)]) if (labels == c).any() else overall
            for c in range(num_classes)]


def nearest_neighbour_reports(train_features: np.ndarray, test_features: np.ndarray,
                              train_reports: Sequence[Sequence[str]]) -> list[str]:
    """Per test image, the first report of the training image closest in feature space (cosine),
    ``features (N, D)``."""
    a = np.asarray(train_features, dtype=float)
    b = np.asarray(test_features, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"train_features, test_features: expected (N, D) and (M, D), got {a.shape}, {b.shape}")
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return [train_reports[j][0] for j in (b @ a.T).argmax(1)]


def report_grades(reports: Sequence[str]) -> np.ndarray:
    """The grade each report states per attribute, ``(N, 5)`` (-1 where the sentence is missing)."""
    parsed = [parse_report(r)[0] for r in reports]
    return np.array([[p.get(a, -1) for a in ATTRIBUTES] for p in parsed], dtype=np.int64)


def class_only_grades(train_grades: np.ndarray, train_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The class-only predictor: for each image, the most frequent training grade of each attribute among
    training images of its (given or predicted) class, ``(N, 5)``."""
    train_grades, train_labels = np.asarray(train_grades), np.asarray(train_labels)
    overall = [np.bincount(train_grades[:, k], minlength=3).argmax() for k in range(train_grades.shape[1])]
    table = {c: ([np.bincount(train_grades[train_labels == c, k], minlength=3).argmax()
                  for k in range(train_grades.shape[1])] if (train_labels == c).any() else overall)
             for c in np.unique(np.concatenate([train_labels, np.asarray(labels)]))}
    return np.array([table[c] for c in np.asarray(labels)], dtype=np.int64)


# ---- attention per word -------------------------------------------------------------------------------------
def sentence_attention_ratios(words: Sequence[Sequence[str]], attentions: Sequence[torch.Tensor],
                              attribute_masks: torch.Tensor) -> np.ndarray:
    """For each image, each attribute's generated sentence (rows) and each attribute's region (columns): the
    sentence's mean attention mass inside the region divided by the region's area share (1 = what uniform
    attention gives). ``words``: generated words per image; ``attentions``: per image ``(len, h, w)``;
    ``attribute_masks (N, 5, H, W)``. Returns ``(N, 5, 5)``, NaN where the sentence or the region is missing."""
    if len(words) != len(attentions) or len(words) != len(attribute_masks):
        raise ValueError(f"words, attentions, attribute_masks: expected one per image, got {len(words)}, "
                         f"{len(attentions)}, {len(attribute_masks)}")
    size = attribute_masks.shape[-2:]
    regions = (attribute_masks > 0.5).float().flatten(2)                               # (N, 5, HW)
    area = regions.mean(-1).numpy()                                                    # (N, 5)
    out = np.full((len(words), len(ATTRIBUTES), len(ATTRIBUTES)), np.nan)
    for i, (seq, att) in enumerate(zip(words, attentions)):
        present = area[i] > 0
        if len(seq) == 0 or not present.any():
            continue
        up = F.interpolate(att[:len(seq), None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
        up = up.clamp_min(0).flatten(1)
        mass = ((up / up.sum(1, keepdim=True).clamp_min(1e-12)) @ regions[i].T).numpy()   # (T, 5)
        for start, end in sentence_spans(seq):
            stated = parse_report(" ".join(seq[start:end]))[0]
            if len(stated) != 1:
                continue
            a = ATTRIBUTES.index(next(iter(stated)))
            if np.isnan(out[i, a]).all():                                              # first sentence counts
                out[i, a, present] = mass[start:end].mean(0)[present] / area[i][present]
    return out


def sentence_spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` word indices of each sentence (the full stop excluded)."""
    spans, start = [], 0
    for t, word in enumerate(words):
        if word == ".":
            spans.append((start, t))
            start = t + 1
    if start < len(words):
        spans.append((start, len(words)))
    return [(a, b) for a, b in spans if b > a]


def attention_specificity(ratios: np.ndarray) -> np.ndarray:
    """Per image: the mean in-region ratio of sentences on their OWN attribute's region minus the mean of
    the other (sentence, region) pairs (from :func:`sentence_attention_ratios`): ``(..., 5, 5) -> (...)``, e.g.
    ``(N,)`` per image or ``(S, N)`` per model and image; 0 for attention that is the same for every word only on
    average, exactly 0 for uniform attention; NaN where an image has no finite diagonal or off-diagonal entry."""
    import warnings
    ratios = np.asarray(ratios, dtype=float)
    eye = np.eye(ratios.shape[-1], dtype=bool)
    diag, off = ratios[..., eye], ratios[..., ~eye]
    defined = np.isfinite(diag).any(-1) & np.isfinite(off).any(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                 # all-NaN rows: NaN, as documented
        return np.where(defined, np.nanmean(diag, -1) - np.nanmean(off, -1), np.nan)


def attention_ratios_per_model(models: Sequence[torch.nn.Module], images: torch.Tensor, vocab: Vocabulary,
                               attribute_masks: torch.Tensor, max_len: int = 48) -> np.ndarray:
    """Per model (e.g. one per training seed): :func:`sentence_attention_ratios` of the report it writes for each
    image (greedy decoding), ``(S, N, 5, 5)``; :func:`attention_specificity` of it is ``(S, N)``. ``images
    (N, 3, S, S)``, ``attribute_masks (N, 5, H, W)``; each model needs ``generate(images, bos, eos, max_len)``."""
    if len(models) == 0:
        raise ValueError("models: expected at least one model")
    if len(images) != len(attribute_masks):
        raise ValueError(f"images, attribute_masks: expected one mask stack per image, got {len(images)} and {len(attribute_masks)}")
    bos, eos = vocab.stoi["<bos>"], vocab.stoi["<eos>"]
    out = []
    for model in models:
        tokens, attentions = model.generate(images, bos, eos, max_len=max_len)
        words = [[vocab.itos[t] for t in seq] for seq in tokens]
        out.append(sentence_attention_ratios(words, [a.cpu() for a in attentions], attribute_masks))
    return np.stack(out)


def same_map_for_every_word(maps: torch.Tensor, lengths: Sequence[int]) -> list[torch.Tensor]:
    """The control 'one map for every word': per image the spatial softmax of ``maps (N, h, w)`` (e.g. the
    class map) repeated for each of its ``lengths[i]`` words, ``[(T_i, h, w), ...]``."""
    soft = torch.softmax(maps.detach().cpu().flatten(1).float(), 1).view_as(maps)
    return [soft[i].expand(int(n), -1, -1) for i, n in enumerate(lengths)]


# ---- retrieval by symptom text ------------------------------------------------------------------------------
QUERIES = ("severe nuclear pleomorphism is present", "mild nuclear pleomorphism is present", "cells are severely crowded",
           "cells are mildly crowded", "polarity is completely lost", "polarity is partially lost",
           "frequent mitoses are seen", "rare mitoses are seen", "nucleoli are very prominent",
           "nucleoli are mildly prominent")
"""Symptom queries, one sentence of the reports' own vocabulary per attribute and abnormal grade."""


def query_prefixes(reports: Sequence[str], query: str) -> list[str]:
    """Per generated report, the sentences about attributes that come BEFORE the query's attribute (the
    reports' fixed order), so ``log p(query | I, prefix)`` scores the query where a report would say it."""
    (attribute,) = symptom_query(query)
    before = set(ATTRIBUTES[:ATTRIBUTES.index(attribute)])
    out = []
    for report in reports:
        kept = [s for s in _sentences(report) if set(parse_report(s)[0]) & before]
        out.append(" . ".join(kept) + " ." if kept else "")
    return out


def class_only_scores(probabilities: np.ndarray, train_labels: np.ndarray, train_relevant: np.ndarray) -> np.ndarray:
    """The class-only ranking: ``sum_c p(c | I) P(relevant | c)`` with ``P(relevant | c)`` from the training
    set, ``probabilities (N, K)`` -> ``(N,)``."""
    probabilities = np.asarray(probabilities, dtype=float)
    train_labels, train_relevant = np.asarray(train_labels), np.asarray(train_relevant, dtype=float)
    rate = np.array([train_relevant[train_labels == c].mean() if (train_labels == c).any() else train_relevant.mean()
                     for c in range(probabilities.shape[1])])
    return probabilities @ rate


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Average precision of ranking by ``scores`` (higher first) against ``relevant (N,)`` bool."""
    return retrieval_scores(scores, relevant, k=1)["AP"]


# ---- over model seeds: one row per trained model ------------------------------------------------------------
def fair_report_systems(model: torch.nn.Module, images: torch.Tensor, train_images: torch.Tensor,
                        train_reports: Sequence[Sequence[str]], train_labels: np.ndarray, vocab: Vocabulary,
                        num_classes: int, max_len: int = 48) -> tuple[dict[str, list[str]], np.ndarray]:
    """One trained MDNet's greedy reports and the two fair baselines that use the same model: the template of the
    class it predicts (:func:`class_templates`, training reports only) and the first report of the training image
    nearest in its feature space (:func:`nearest_neighbour_reports`, GAP of ``image.features``). ``images
    (N, 3, S, S)``, ``train_images (M, 3, S, S)``; returns ``({system: N reports}, probabilities (N, K))``."""
    from medxai_lib.models.inference import in_chunks
    if len(train_images) != len(train_reports) or len(train_reports) != len(train_labels):
        raise ValueError(f"train_images, train_reports, train_labels: expected one per training image, got "
                         f"{len(train_images)}, {len(train_reports)}, {len(train_labels)}")
    tokens, _ = model.generate(images, vocab.stoi["<bos>"], vocab.stoi["<eos>"], max_len=max_len)
    with torch.no_grad():
        probs = torch.softmax(in_chunks(model.diagnose, images), 1).cpu().numpy()
        gap = lambda x: in_chunks(model.image.features, x).mean((2, 3)).cpu().numpy()      # noqa: E731
        neighbours = nearest_neighbour_reports(gap(train_images), gap(images), train_reports)
    templates = class_templates(train_reports, np.asarray(train_labels), num_classes)
    return ({"MDNet": [vocab.decode(t) for t in tokens], "template of the predicted class": [templates[c] for c in probs.argmax(1)],
             "nearest neighbour report": neighbours}, probs)


def per_model_report_scores(systems_per_model: Sequence[dict[str, Sequence[str]]], references: Sequence[Sequence[str]],
                            grades: np.ndarray | None = None) -> dict[str, dict[str, np.ndarray]]:
    """CIDEr-D (and, with ``grades (N, 5)``, attribute accuracy) per image of every system, one row per model:
    ``{system: {"cider": (S, N), "attributes": (S, N)}}`` from ``systems_per_model`` (one dict per model, e.g.
    :func:`fair_report_systems` of each seed's MDNet). Rows of a system that is the same for every model
    (a constant report) are equal."""
    if len(systems_per_model) == 0:
        raise ValueError("systems_per_model: expected one dict of systems per model, got none")
    names = set(systems_per_model[0])
    if any(set(s) != names for s in systems_per_model):
        raise ValueError("systems_per_model: every model needs the same systems")
    rows = [score_reports(dict(s), references, grades)[1] for s in systems_per_model]
    keys = ["cider"] + (["attributes"] if grades is not None else [])
    return {n: {k: np.stack([r[n][k] for r in rows]) for k in keys} for n in systems_per_model[0]}


def retrieval_per_model(query_scores: Sequence[Any], reports_per_model: Sequence[Sequence[str]],
                        probabilities_per_model: Sequence[np.ndarray], train_labels: np.ndarray, train_grades: np.ndarray,
                        test_grades: np.ndarray, queries: Sequence[str] = QUERIES) -> dict[str, np.ndarray]:
    """Average precision per query of three rankings for every model (one row per model, ``(S, Q)``):
    ``query_scores[s](query)``, model s's score of each test image for the query (``log p(query | I)``:
    ``train.mdnet.report_log_likelihood`` after the model's own earlier sentences, :func:`query_prefixes`),
    parsing the model's generated report (:func:`retrieve_by_symptoms`) and the predicted class alone
    (:func:`class_only_scores`). Relevance: :func:`relevant_images` of the true grades."""
    if not (len(query_scores) == len(reports_per_model) == len(probabilities_per_model)) or len(query_scores) == 0:
        raise ValueError(f"query_scores, reports_per_model, probabilities_per_model: expected one of each per model, got "
                         f"{len(query_scores)}, {len(reports_per_model)}, {len(probabilities_per_model)}")
    out: dict[str, list[list[float]]] = {"log p(query | I)": [], "generated report": [], "predicted class only": []}
    for score, texts, probs in zip(query_scores, reports_per_model, probabilities_per_model):
        rows: dict[str, list[float]] = {k: [] for k in out}
        for q in queries:
            relevant = relevant_images(q, test_grades)
            rows["log p(query | I)"].append(average_precision(np.asarray(score(q)), relevant))
            rows["generated report"].append(average_precision(retrieve_by_symptoms(q, texts, 1 - probs[:, 0]), relevant))
            rows["predicted class only"].append(average_precision(
                class_only_scores(probs, train_labels, relevant_images(q, train_grades)), relevant))
        for k in out:
            out[k].append(rows[k])
    return {k: np.asarray(v) for k, v in out.items()}


# ---- real reports (IU X-ray) --------------------------------------------------------------------------------
NEGATION_CUES = ("no", "not", "without", "negative", "free", "resolved", "removed", "clear")


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters only) of free text."""
    import re
    return re.findall(r"[a-z]+", text.lower())


def text_statistics(texts: Sequence[str]) -> dict[str, float]:
    """Words per report (mean, median), vocabulary size, share of sentences with a negation cue."""
    import re
    tokens = [words(t) for t in texts]
    sentences = [s for t in texts for s in re.split(r"[.;]", t.lower()) if words(s)]
    lengths = np.array([len(t) for t in tokens])
    return {"reports": len(texts), "words per report (mean)": float(lengths.mean()),
            "words per report (median)": float(np.median(lengths)),
            "vocabulary": len({w for t in tokens for w in t}),
            "sentences with a negation cue": float(np.mean([bool(set(words(s)) & set(NEGATION_CUES)) for s in sentences]))}


def keyword_mentions(texts: Sequence[str], keyword: str, negation_aware: bool) -> np.ndarray:
    """Per report, how many sentences mention ``keyword`` (a word prefix, e.g. ``effusion`` matches
    ``effusions``); with ``negation_aware`` only sentences where no negation cue precedes it, ``(N,)``."""
    import re
    key = keyword.lower()
    counts = []
    for text in texts:
        n = 0
        for sentence in re.split(r"[.;]", text.lower()):
            toks = words(sentence)
            hits = [i for i, w in enumerate(toks) if w.startswith(key)]
            if hits and not (negation_aware and set(toks[:hits[0]]) & set(NEGATION_CUES)):
                n += 1
        counts.append(n)
    return np.asarray(counts, dtype=float)


# ---- scoring several report generators at once --------------------------------------------------------------
def score_reports(systems: dict[str, Sequence[str]], references: Sequence[Sequence[str]], grades: np.ndarray | None = None,
                  with_meteor: bool = False, meteor_scorer: Any = None
                  ) -> tuple["pandas.DataFrame", dict[str, dict[str, np.ndarray]]]:
    """BLEU-1..4, METEOR (when ``with_meteor``; ``meteor_scorer``: a process from
    :func:`~medxai_lib.evaluate.metrics.text.start_meteor`, started earlier), ROUGE-L, CIDEr-D and (with ``grades (N, 5)``) attribute
    accuracy of each system's reports (``systems``: name -> one report per image) against ``references``
    (per image, its reports). Returns ``(table, per-image values)``: per system ``bleu`` (BLEU sufficient
    statistics, see :func:`~medxai_lib.evaluate.metrics.text.bleu_from_statistics`), ``cider``, ``rouge``,
    ``meteor`` and ``attributes`` (share of the 5 grades stated correctly)."""
    import pandas as pd
    from medxai_lib.evaluate.metrics.text import bleu_from_statistics, bleu_statistics, cider_d_per_image, meteor_systems, rouge_l_per_image
    refs = [[tokenize(r) for r in per_image] for per_image in references]
    rows, units = {}, {}
    meteors = meteor_systems({n: [tokenize(t) for t in texts] for n, texts in systems.items()}, refs, meteor_scorer) if with_meteor else {}
    for name, texts in systems.items():
        if len(texts) != len(refs):
            raise ValueError(f"systems[{name!r}]: expected {len(refs)} reports, got {len(texts)}")
        cands = [tokenize(t) for t in texts]
        u = {"bleu": bleu_statistics(cands, refs), "rouge": rouge_l_per_image(cands, refs),
             "cider": cider_d_per_image(cands, refs)}
        row = {f"BLEU-{n}": float(bleu_from_statistics(u["bleu"], n)) for n in range(1, 5)}
        if with_meteor:
            row["METEOR"], u["meteor"] = meteors[name]
        row |= {"ROUGE-L": float(u["rouge"].mean()), "CIDEr-D": float(u["cider"].mean())}
        if grades is not None:
            u["attributes"] = (report_grades(texts) == np.asarray(grades)).mean(1)
            row["attribute accuracy"] = float(u["attributes"].mean())
        rows[name], units[name] = row, u
    return pd.DataFrame(rows).T, units


def block_evidence_shares(contributions: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
    """Each block's share of the absolute evidence for ``classes (B,)``: ``|w_m^c . GAP(F_m)|`` normalised over
    the blocks, from ``contributions (B, M, K)`` (``MDNetImage.block_contributions``); ``(B, M)``, rows sum to 1."""
    picked = contributions.detach().abs()[torch.arange(len(classes)), :, classes]          # (B, M)
    return (picked / picked.sum(1, keepdim=True).clamp_min(1e-12)).cpu().numpy()
