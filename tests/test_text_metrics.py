"""Our report metrics against nltk (BLEU), rouge-score (ROUGE-L) and pycocoevalcap (CIDEr-D)."""
import pytest

from medxai_lib.evaluate.metrics.text import cider_d, corpus_bleu, rouge_l

CANDS = ["there is severe nuclear pleomorphism . cells are crowded .",
         "nuclei are uniform . no mitosis is seen . conclusion normal .",
         "polarity is lost . conclusion high grade ."]
REFS = [["there is severe pleomorphism of the nuclei . cells are severely crowded .",
         "severe nuclear pleomorphism is present . there is severe cell crowding ."],
        ["nuclei are uniform in size and shape . no mitosis is seen . conclusion normal .",
         "there is no nuclear pleomorphism . mitotic figures are absent . the diagnosis is normal tissue ."],
        ["polarity is completely lost . conclusion high grade carcinoma .",
         "there is complete loss of polarity . the diagnosis is high grade ."]]
cands = [c.split() for c in CANDS]
refs = [[r.split() for r in rs] for rs in REFS]


def test_bleu_matches_nltk():
    from nltk.translate.bleu_score import corpus_bleu as nltk_bleu
    ours = corpus_bleu(cands, refs)
    for n in range(1, 5):
        weights = tuple([1.0 / n] * n)
        assert ours[f"BLEU-{n}"] == pytest.approx(nltk_bleu(refs, cands, weights=weights), abs=1e-9)
    assert corpus_bleu([["a", "b"]], [[["a", "b"]]])["BLEU-2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="candidates"):
        corpus_bleu(cands, refs[:1])


def test_rouge_l_matches_rouge_score():
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=type("T", (), {"tokenize": staticmethod(str.split)})())
    expected = sum(max(scorer.score(r, c)["rougeL"].fmeasure for r in rs) for c, rs in zip(CANDS, REFS)) / len(CANDS)
    assert rouge_l(cands, refs) == pytest.approx(expected, abs=1e-9)


def test_cider_d_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider
    gts = {i: rs for i, rs in enumerate(REFS)}
    res = {i: [c] for i, c in enumerate(CANDS)}
    expected, _ = Cider().compute_score(gts, res)
    assert cider_d(cands, refs) == pytest.approx(expected, rel=1e-6)
