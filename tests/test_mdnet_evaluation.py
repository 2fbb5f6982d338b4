"""Report baselines, per-sentence attention, BLEU sufficient statistics, METEOR and the phantom's grade option."""
import hashlib

import numpy as np
import pytest
import torch

from medxai_lib.data import ATTRIBUTES, HistologyPhantom
from medxai_lib.evaluate.studies.mdnet import (attention_specificity, class_only_grades, class_templates, modal_report,
                                         nearest_neighbour_reports, report_grades, sentence_attention_ratios,
                                         sentence_spans)
from medxai_lib.evaluate.metrics.text import (bleu_from_statistics, bleu_statistics, cider_d, cider_d_per_image, corpus_bleu,
                                      meteor, meteor_available, rouge_l, rouge_l_per_image)

REPORTS = [["a b . c d .", "a b . c e ."], ["a x . c d .", "a b . c d ."], ["q . c e .", "q . c e ."]]


def test_modal_report_and_class_templates():
    assert modal_report(REPORTS) == "a b . c d ."
    assert class_templates(REPORTS, np.array([0, 0, 1]), 3) == ["a b . c d .", "q . c e .", "a b . c d ."]
    with pytest.raises(ValueError, match="reports"):
        modal_report([])


def test_nearest_neighbour_reports_pick_the_closest_training_image():
    train = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    test = np.array([[0.1, 2.0], [3.0, 0.2]])
    assert nearest_neighbour_reports(train, test, REPORTS) == [REPORTS[1][0], REPORTS[0][0]]
    with pytest.raises(ValueError, match="features"):
        nearest_neighbour_reports(train, test[:, :1], REPORTS)


def test_report_grades_and_the_class_only_predictor():
    grades = report_grades(["there is severe cell crowding . conclusion normal .", "polarity is preserved ."])
    assert grades.tolist() == [[-1, 2, -1, -1, -1], [-1, -1, 0, -1, -1]]
    train_grades = np.array([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [2, 2, 1, 1, 1], [2, 2, 1, 0, 1], [1, 1, 1, 1, 1]])
    train_labels = np.array([0, 0, 2, 2, 2])
    predicted = class_only_grades(train_grades, train_labels, np.array([2, 0, 1]))
    assert predicted[0].tolist() == [2, 2, 1, 1, 1] and predicted[1].tolist() == [0, 0, 0, 0, 0]
    assert predicted[2].tolist() == [0, 1, 1, 0, 1]          # an unseen class falls back to the overall mode


def test_sentence_attention_ratios_by_hand():
    masks = torch.zeros(1, 5, 4, 4)                          # same grid as the attention: no interpolation
    masks[0, 0, :, :2] = 1                                   # pleomorphism region: left half
    masks[0, 1, :, 2:] = 1                                   # crowding region: right half
    left = torch.zeros(4, 4)
    left[:, :2] = 1 / 8                                      # all attention on the left half
    words = "there is severe pleomorphism of the nuclei . cells are severely crowded .".split()
    attention = torch.stack([left] * 8 + [torch.full((4, 4), 1 / 16)] * 5)
    ratios = sentence_attention_ratios([words], [attention], masks)
    assert ratios.shape == (1, 5, 5)
    assert ratios[0, 0, 0] == pytest.approx(2.0, abs=1e-4) and ratios[0, 0, 1] == pytest.approx(0.0, abs=1e-4)
    assert ratios[0, 1, 0] == pytest.approx(1.0, abs=1e-4) and ratios[0, 1, 1] == pytest.approx(1.0, abs=1e-4)
    assert np.isnan(ratios[0, 2:]).all() and np.isnan(ratios[0, :, 2:]).all()
    assert attention_specificity(ratios)[0] == pytest.approx((2 + 1) / 2 - (0 + 1) / 2, abs=1e-4)
    uniform = sentence_attention_ratios([words], [torch.full((13, 4, 4), 1 / 16)], masks)
    assert attention_specificity(uniform)[0] == pytest.approx(0.0, abs=1e-6)
    only_diagonal = np.full((1, 5, 5), np.nan)
    only_diagonal[0, 0, 0] = 2.0
    assert np.isnan(attention_specificity(np.full((2, 5, 5), np.nan))).all()   # nothing defined
    assert np.isnan(attention_specificity(only_diagonal)).all()                 # no off-diagonal pair to compare with
    assert sentence_spans(["a", ".", "b", "c", ".", "d"]) == [(0, 1), (2, 4), (5, 6)]
    with pytest.raises(ValueError, match="one per image"):
        sentence_attention_ratios([words, words], [attention], masks)


def test_attention_ratios_per_model_score_each_model_s_own_report():
    from medxai_lib.data.phantoms.histology import Vocabulary
    from medxai_lib.evaluate.studies.mdnet import attention_ratios_per_model
    text = "there is severe pleomorphism of the nuclei . cells are severely crowded ."
    vocab = Vocabulary([text])
    masks = torch.zeros(2, 5, 4, 4)
    masks[:, 0, :, :2] = 1
    masks[:, 1, :, 2:] = 1
    left = torch.zeros(4, 4)
    left[:, :2] = 1 / 8

    class Stub:                                               # writes `text` for every image, with fixed attention
        def __init__(self, attention):
            self.attention = attention

        def generate(self, images, bos, eos, max_len=48):
            ids = vocab.encode(text)[1:-1]
            return [ids] * len(images), [self.attention] * len(images)

    specific = torch.stack([left] * 8 + [torch.full((4, 4), 1 / 16)] * 5)
    ratios = attention_ratios_per_model([Stub(specific), Stub(torch.full((13, 4, 4), 1 / 16))], torch.zeros(2, 3, 8, 8),
                                        vocab, masks)
    assert ratios.shape == (2, 2, 5, 5)
    assert ratios[0, :, 0, 0] == pytest.approx([2.0, 2.0], abs=1e-4)
    out = attention_specificity(ratios)                                   # (models, images) in one call
    assert out.shape == (2, 2)
    assert out[0] == pytest.approx([1.0, 1.0], abs=1e-4) and out[1] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert np.array_equal(out[0], attention_specificity(ratios[0]))       # same as per model
    with pytest.raises(ValueError, match="at least one model"):
        attention_ratios_per_model([], torch.zeros(2, 3, 8, 8), vocab, masks)
    with pytest.raises(ValueError, match="one mask stack per image"):
        attention_ratios_per_model([Stub(specific)], torch.zeros(3, 3, 8, 8), vocab, masks)


def test_bleu_statistics_reproduce_corpus_bleu_and_bootstrap_shapes():
    cands = [c.split() for c in ["a b c d e", "x y z", "a b c d"]]
    refs = [[r.split()] for r in ["a b c d f", "x y z w", "a b c d"]]
    stats = bleu_statistics(cands, refs)
    assert stats.shape == (3, 10)
    for n in range(1, 5):
        assert float(bleu_from_statistics(stats, n)) == pytest.approx(corpus_bleu(cands, refs)[f"BLEU-{n}"])
    draws = bleu_from_statistics(stats[np.array([[0, 1, 2], [2, 2, 2]])])
    assert draws.shape == (2,) and draws[1] == pytest.approx(1.0)          # three perfect copies
    assert rouge_l_per_image(cands, refs).mean() == pytest.approx(rouge_l(cands, refs))
    assert cider_d_per_image(cands, refs).mean() == pytest.approx(cider_d(cands, refs))
    with pytest.raises(ValueError, match="stats"):
        bleu_from_statistics(stats[:, :5])


@pytest.mark.skipif(not meteor_available(), reason="METEOR needs java and pycocoevalcap")
def test_meteor_matches_pycocoevalcap_and_ranks_sensibly():
    refs = [["the heart is normal in size .".split()], ["no pleural effusion is seen .".split()]]
    same = [r[0] for r in refs]
    other = ["the lungs are clear .".split(), "the heart is large .".split()]
    score, per_image = meteor(same, refs)
    worse, _ = meteor(other, refs)
    assert per_image.shape == (2,) and score > 0.9 and worse < score


@pytest.mark.skipif(not meteor_available(), reason="METEOR needs java and pycocoevalcap")
def test_a_meteor_process_started_early_scores_the_same_and_is_shut_down():
    from medxai_lib.evaluate.metrics.text import meteor_systems, start_meteor
    refs = [["the heart is normal in size .".split()], ["no pleural effusion is seen .".split()]]
    systems = {"copy": [r[0] for r in refs], "other": ["the lungs are clear .".split(), "the heart is large .".split()]}
    scorer = start_meteor()
    early = meteor_systems(systems, refs, scorer)
    assert scorer.meteor_p.poll() is not None                               # shut down after use
    again = meteor_systems(systems, refs, scorer)                           # a dead process is replaced, not reused
    fresh = meteor_systems(systems, refs)
    for name in systems:
        assert early[name][0] == pytest.approx(fresh[name][0]) == pytest.approx(again[name][0])
        assert np.allclose(early[name][1], fresh[name][1])


def test_histology_grade_correlation_option():
    default = HistologyPhantom(30, size=32, seed=3)
    assert default.grade_correlation is None
    blob = default.grades.tobytes() + "|".join(r for rs in default.reports for r in rs).encode()
    digest = hashlib.sha256(blob + default[0]["image"].numpy().tobytes()).hexdigest()[:16]
    assert digest == "442e02ec5f8034cc"          # the default phantom, bit for bit as before the option existed
    again = HistologyPhantom(30, size=32, seed=3, grade_correlation=None)
    assert (again.grades == default.grades).all() and again.reports == default.reports
    assert torch.equal(again[0]["image"], default[0]["image"])
    independent = HistologyPhantom(3000, size=32, seed=0, grade_correlation=0.0)
    g = independent.grades
    assert abs(np.corrcoef(g.T)[np.triu_indices(5, 1)].mean()) < 0.04              # no shared severity
    assert np.allclose(np.bincount(g.ravel(), minlength=3) / g.size, (0.6, 0.3, 0.1), atol=0.02)
    tied = HistologyPhantom(3000, size=32, seed=0, grade_correlation=0.8).grades
    assert np.corrcoef(tied.T)[np.triu_indices(5, 1)].mean() > 0.4
    assert set(independent.labels) == {0, 1, 2, 3} and len(ATTRIBUTES) == g.shape[1]
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="grade_correlation"):
            HistologyPhantom(3, grade_correlation=bad)
    with pytest.raises(ValueError, match="grade_probs"):
        HistologyPhantom(3, grade_correlation=0.0, grade_probs=(0.5, 0.5, 0.5))


def test_mdnet_figures_pick_steps_and_share_scales():
    import matplotlib
    matplotlib.use("Agg")
    from medxai_lib.viz.mdnet import attention_steps, plot_block_maps, plot_ratio_matrices
    words = "there is severe cell crowding . polarity is preserved . conclusion normal .".split()
    assert attention_steps(words) == [(4, "crowding", 1), (6, "polarity", 2)]   # the word naming each attribute
    plain = "nuclear size is regular . there is frequent mitosis . conclusion normal .".split()
    assert attention_steps(plain) == [(2, "is", 0), (8, "mitosis", 3)]    # no naming word: the middle word
    fig = plot_ratio_matrices({"a": np.eye(5) + 1, "b": np.ones((5, 5))})
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 2 and heat[0].images[0].norm is heat[1].images[0].norm          # one shared scale
    assert [t.get_text() for t in heat[0].get_xticklabels()] == list(ATTRIBUTES)          # full words, not "crowdi"
    norm = heat[0].images[0].norm
    assert norm.vcenter == 1.0 and abs((norm.vmax - 1.0) - (1.0 - norm.vmin)) < 1e-12    # symmetric about uniform attention
    mixed = plot_ratio_matrices({"a": np.where(np.eye(5) > 0, 2.2, 0.97)}).axes[0].images[0].norm
    assert mixed(0.97) > 0.45 and mixed(2.2) == 1.0          # beside a 2.2 peak a 3% dip stays near the centre colour
    maps = {"x": torch.randn(3, 4, 4), "y": torch.randn(3, 4, 4)}
    fig = plot_block_maps(torch.zeros(3, 16, 16), maps, ["stem", "block1", "block2"], "normal")
    limits = {ax.images[0].get_clim() for ax in fig.axes if ax.images and ax.images[0].get_cmap().name == "RdBu_r"}
    assert len(limits) == 1 and list(limits)[0][0] == -list(limits)[0][1]                # symmetric, shared


def test_mdnet_map_figures_draw_panels_of_at_least_180_pixels():
    """The style guide's minimum panel size at the notebooks' 100 dpi (the panels were 136 px when the
    figure's height, not its width, bounded the square panels)."""
    import matplotlib
    matplotlib.use("Agg")
    from medxai_lib.viz.mdnet import plot_attention_strip, plot_block_maps
    maps = {"ensemble": torch.randn(5, 8, 8), "additive": torch.randn(5, 8, 8)}
    words = "there is severe cell crowding . polarity is preserved . there is frequent mitosis .".split()
    figures = [plot_block_maps(torch.rand(3, 64, 64), maps, ["stem", "b1", "b2", "b3", "b4"], "high grade"),
               plot_attention_strip(torch.rand(3, 64, 64), words, torch.rand(len(words), 8, 8), torch.ones(5, 64, 64), "MDNet")]
    for fig in figures:
        fig.set_dpi(100)
        fig.canvas.draw()
        panels = [ax.get_window_extent() for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
        assert len(panels) >= 4 and min(min(b.width, b.height) for b in panels) >= 180


def _tiny_mdnet_setup():
    from medxai_lib.models.mdnet import MDNet
    ds = HistologyPhantom(10, size=32, seed=3, grade_correlation=0.0)
    vocab = ds.vocabulary()
    models = []
    for s in (0, 1):
        torch.manual_seed(s)
        models.append(MDNet(len(vocab)).eval())
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    return ds, vocab, models, images


def test_fair_report_systems_use_the_model_s_own_predictions_and_features():
    from medxai_lib.evaluate.studies.mdnet import fair_report_systems
    ds, vocab, models, images = _tiny_mdnet_setup()
    train, test = slice(0, 6), slice(6, 10)
    systems, probs = fair_report_systems(models[0], images[test], images[train], ds.reports[train], ds.labels[train], vocab, 4)
    assert probs.shape == (4, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    tokens, _ = models[0].generate(images[test], vocab.stoi["<bos>"], vocab.stoi["<eos>"], max_len=48)
    assert systems["MDNet"] == [vocab.decode(t) for t in tokens]
    templates = class_templates(ds.reports[train], ds.labels[train], 4)
    assert systems["template of the predicted class"] == [templates[c] for c in probs.argmax(1)]
    with torch.no_grad():                                   # by hand: cosine nearest neighbour on GAP features
        a = models[0].image.features(images[train]).mean((2, 3)).numpy()
        b = models[0].image.features(images[test]).mean((2, 3)).numpy()
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    assert systems["nearest neighbour report"] == [ds.reports[int(j)][0] for j in (b @ a.T).argmax(1)]
    other, _ = fair_report_systems(models[1], images[test], images[train], ds.reports[train], ds.labels[train], vocab, 4)
    assert other["MDNet"] != systems["MDNet"] or other["nearest neighbour report"] != systems["nearest neighbour report"]
    with pytest.raises(ValueError, match="one per training image"):
        fair_report_systems(models[0], images[test], images[train], ds.reports[train], ds.labels[:5], vocab, 4)


def test_per_model_report_scores_stack_one_row_per_model():
    from medxai_lib.evaluate.studies.mdnet import per_model_report_scores
    refs = [["a b . c d .", "a b . c e ."], ["a x . c d .", "a b . c d ."], ["q . c e .", "q . c e ."]]
    tok = lambda texts: [t.split() for t in texts]                                  # noqa: E731
    first = {"model": ["a b . c d .", "q . c e .", "a x ."], "constant": ["a b . c d ."] * 3}
    second = {"model": ["q . c e .", "a b . c d .", "q . c e ."], "constant": ["a b . c d ."] * 3}
    out = per_model_report_scores([first, second], refs)
    assert set(out) == {"model", "constant"} and set(out["model"]) == {"cider"}
    assert out["model"]["cider"].shape == (2, 3)
    assert np.allclose(out["model"]["cider"][1], cider_d_per_image(tok(second["model"]), [tok(r) for r in refs]))
    assert np.array_equal(out["constant"]["cider"][0], out["constant"]["cider"][1])      # the same for every model
    assert not np.array_equal(out["model"]["cider"][0], out["model"]["cider"][1])
    graded = per_model_report_scores([first], refs, grades=np.zeros((3, 5), dtype=int))
    assert graded["model"]["attributes"].shape == (1, 3)
    with pytest.raises(ValueError, match="same systems"):
        per_model_report_scores([first, {"model": first["model"]}], refs)
    with pytest.raises(ValueError, match="none"):
        per_model_report_scores([], refs)


def test_retrieval_per_model_scores_each_model_s_rankings():
    from medxai_lib.evaluate.studies.mdnet import (QUERIES, average_precision, class_only_scores, query_prefixes,
                                                   relevant_images, retrieval_per_model, retrieve_by_symptoms)
    from medxai_lib.train.mdnet import report_log_likelihood
    ds, vocab, models, images = _tiny_mdnet_setup()
    texts = [[ds.reports[i][0] for i in range(len(ds))], [ds.reports[i][1] for i in range(len(ds))]]
    probs = [np.full((len(ds), 4), 0.25), np.eye(4)[ds.labels]]
    queries = QUERIES[:3]
    log_p = [lambda q, m=m, t=t: report_log_likelihood(m, images, vocab, q, prefixes=query_prefixes(t, q)) for m, t in zip(models, texts)]
    out = retrieval_per_model(log_p, texts, probs, ds.labels, ds.grades, ds.grades, queries)
    assert {k: v.shape for k, v in out.items()} == {k: (2, 3) for k in ("log p(query | I)", "generated report", "predicted class only")}
    q = queries[2]
    rel = relevant_images(q, ds.grades)
    assert out["log p(query | I)"][1, 2] == pytest.approx(
        average_precision(report_log_likelihood(models[1], images, vocab, q, prefixes=query_prefixes(texts[1], q)), rel))
    assert out["generated report"][0, 2] == pytest.approx(average_precision(retrieve_by_symptoms(q, texts[0], 1 - probs[0][:, 0]), rel))
    assert out["predicted class only"][1, 2] == pytest.approx(
        average_precision(class_only_scores(probs[1], ds.labels, relevant_images(q, ds.grades)), rel))
    with pytest.raises(ValueError, match="one of each per model"):
        retrieval_per_model(log_p, texts[:1], probs, ds.labels, ds.grades, ds.grades, queries)
