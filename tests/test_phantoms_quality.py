"""Phantom quality: labels follow their intended cues and not their confounders; masks exist exactly
where a cue is present; seeds reproduce; group splits never overlap."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from medxai_lib.data import (ATTRIBUTES, CONCEPTS, HISTOLOGY_CLASSES, LESION_TYPES, FundusPhantom, HistologyPhantom,
                             SkinLesionPhantom, Vocabulary, dr_grade, group_split, histology_class, tokenize)
from medxai_lib.data.phantoms.skin import render_lesion


# ---- skin ---------------------------------------------------------------------------------------------
def test_skin_label_follows_cues_not_hair():
    ds = SkinLesionPhantom(400, size=32, seed=0)
    table = ds.cue_table()
    cues = table[["irregularity", "asymmetry", "n_colours", "n_dots"]].to_numpy()
    probs = cross_val_predict(LogisticRegression(max_iter=2000), cues, table["label"], cv=5, method="predict_proba")[:, 1]
    assert roc_auc_score(table["label"], probs) > 0.95
    hair_auc = roc_auc_score(table["label"], table["n_hairs"])
    assert abs(hair_auc - 0.5) < 0.07, hair_auc


def test_skin_concept_masks_exactly_where_cues_are():
    ds = SkinLesionPhantom(40, size=64, seed=1)
    idx = {c: i for i, c in enumerate(CONCEPTS)}
    hairy_with_mask = []
    for i in range(len(ds)):
        spec, concepts = ds.specs[i], ds[i]["concepts"] > 0
        assert concepts[idx["lesion"]].any() and concepts[idx["border"]].any()
        assert torch.equal(concepts[idx["skin"]], ~concepts[idx["lesion"]])
        if spec.n_hairs > 0:  # a hair may run outside the frame, so most (not all) hairy specs show one
            hairy_with_mask.append(bool(concepts[idx["hair"]].any()))
        if spec.n_hairs == 0:
            assert not concepts[idx["hair"]].any()
        if spec.n_dots == 0:
            assert not concepts[idx["dots"]].any()
        if not spec.colours:
            assert not concepts[idx["colour_irregular"]].any()
        else:
            assert concepts[idx["colour_irregular"]].any()
        assert not (concepts[idx["colour_irregular"]] & ~concepts[idx["lesion"]]).any()
    assert np.mean(hairy_with_mask) > 0.8


def test_skin_determinism_modes_and_hairless_twin():
    a, b = SkinLesionPhantom(5, size=48, seed=3), SkinLesionPhantom(5, size=48, seed=3)
    assert torch.equal(a[2]["image"], b[2]["image"])
    assert not torch.equal(a[2]["image"], SkinLesionPhantom(5, size=48, seed=4)[2]["image"])
    ham = SkinLesionPhantom(60, size=32, mode="ham7", images_per_lesion=3)
    assert len(ham) > 60 and set(ham.labels) <= set(range(7)) and len(set(ham.labels)) >= 5
    train, test = group_split(ham.lesion_ids, (0.7, 0.3))
    assert not {ham.lesion_ids[i] for i in train} & {ham.lesion_ids[i] for i in test}
    twin = a.counterfactual(n_hairs=0)
    assert twin[0]["concepts"][CONCEPTS.index("hair")].sum() == 0
    noisy = SkinLesionPhantom(300, size=32, label_noise=0.5, seed=0)
    clean = SkinLesionPhantom(300, size=32, label_noise=0.0, seed=0)
    assert (noisy.labels != clean.labels).mean() > 0.15
    with pytest.raises(ValueError, match="mode"):
        SkinLesionPhantom(3, mode="seven")
    with pytest.raises(ValueError, match="label_noise"):
        SkinLesionPhantom(3, label_noise=2)


# ---- fundus -------------------------------------------------------------------------------------------
def test_fundus_grade_rule():
    assert dr_grade({}) == 0 and dr_grade({"microaneurysm": 3}) == 1
    assert dr_grade({"microaneurysm": 3, "hard_exudate": 1}) == 2
    assert dr_grade({"haemorrhage": 8}) == 3 and dr_grade({"cotton_wool": 2}) == 3
    assert dr_grade({"neovascularisation": 1}) == 4
    with pytest.raises(ValueError, match="unknown lesion types"):
        dr_grade({"drusen": 1})


def test_fundus_masks_match_counts_and_grade_is_predictable():
    ds = FundusPhantom(40, size=96, seed=2)
    for i in range(len(ds)):
        item = ds[i]
        counts = item["meta"]["counts"]
        assert dr_grade(counts) == item["meta"]["grade"] == int(item["label"])
        for t, name in enumerate(LESION_TYPES):
            assert bool(item["lesions"][t].any()) == (counts[name] > 0), (i, name)
        assert item["vessels"].sum() > 50 and not (item["vessels"] > item["fov"]).any()
        assert (item["mask"].sum() > 0) == (item["meta"]["grade"] > 0)
    table = np.array([[ds.specs[i].counts[k][1] for k in range(5)] for i in range(len(ds))])
    assert (np.array([dr_grade(dict(zip(LESION_TYPES, row))) for row in table]) == ds.labels).all()
    healthy = FundusPhantom(6, size=64, healthy=True)
    assert (healthy.labels == 0).all() and all(healthy[i]["mask"].sum() == 0 for i in range(6))
    assert torch.equal(FundusPhantom(3, size=64, seed=5)[1]["image"], FundusPhantom(3, size=64, seed=5)[1]["image"])
    train, test = group_split(ds.patient_ids, (0.5, 0.5))
    assert not {ds.patient_ids[i] for i in train} & {ds.patient_ids[i] for i in test}
    with pytest.raises(ValueError, match="grade_probs"):
        FundusPhantom(3, grade_probs=(1, 0, 0))


# ---- histology ------------------------------------------------------------------------------------------
def test_histology_class_rule_and_masks():
    assert histology_class(dict.fromkeys(ATTRIBUTES, 0)) == "normal"
    assert histology_class({**dict.fromkeys(ATTRIBUTES, 0), "mitosis": 1, "crowding": 1}) == "low grade"
    assert histology_class({**dict.fromkeys(ATTRIBUTES, 0), "nucleoli": 2}) == "high grade"
    assert histology_class(dict.fromkeys(ATTRIBUTES, 1)) == "high grade"
    assert histology_class(dict.fromkeys(ATTRIBUTES, 0), sufficient=False) == "insufficient information"
    ds = HistologyPhantom(60, size=64, seed=1, insufficient_prob=0.1)
    assert set(ds.labels) == set(range(4))
    for i in range(len(ds)):
        item = ds[i]
        spec = ds.specs[i]
        assert HISTOLOGY_CLASSES[int(item["label"])] == histology_class(dict(spec.grades), spec.sufficient)
        for k, a in enumerate(ATTRIBUTES):
            if spec.sufficient:
                assert bool(item["attribute_masks"][k].any()) == (dict(spec.grades)[a] > 0), (i, a)
            else:
                assert not item["attribute_masks"][k].any()


def test_histology_grades_predictable_from_pixels_in_their_regions():
    """Crowding: more nuclear (dark) pixels inside the crowding region than outside it."""
    ds = HistologyPhantom(40, size=96, seed=2, normalize=False)
    ratios = []
    for i in range(len(ds)):
        item = ds[i]
        if item["grades"][1] == 2:
            dark = item["image"].mean(0) < 0.55
            region = item["attribute_masks"][1] > 0
            if region.sum() > 100 and (~region).sum() > 100:
                ratios.append(dark[region].float().mean() / dark[~region].float().mean().clamp_min(1e-3))
    assert len(ratios) >= 3 and float(np.median(ratios)) > 1.5


def test_reports_vocabulary_and_tokenizer():
    ds = HistologyPhantom(30, size=48, seed=0)
    item = ds[0]
    assert len(item["reports"]) == 5 and len(set(item["reports"])) > 1
    label = HISTOLOGY_CLASSES[int(item["label"])]
    assert all(r.rstrip(" .").endswith(label.split()[0]) or label in r for r in item["reports"])
    assert all(len(r.split(" . ")) == len(ATTRIBUTES) + 1 for r in item["reports"])
    vocab = ds.vocabulary()
    ids = vocab.encode(item["reports"][0])
    assert ids[0] == vocab.stoi["<bos>"] and ids[-1] == vocab.stoi["<eos>"]
    assert vocab.decode(ids) == " ".join(tokenize(item["reports"][0]))
    assert vocab.encode("zebra", max_len=5) == [1, 3, 2, 0, 0]
    assert tokenize("Severe, pleomorphism.") == ["severe", "pleomorphism", "."]
    assert len(Vocabulary(["a b", "b c"])) == 4 + 3
