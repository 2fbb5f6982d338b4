"""The claim standard: a claim beats its strongest control by a margin with a bootstrap CI, or fails."""
import numpy as np
import pytest

from medxai_lib.evaluate.claims import claim, identity, mean_statistic, parse_line, skipped


def _data(n=200, shift=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)


def test_a_clear_effect_holds_and_prints_one_parseable_line(capsys):
    tested, control = _data()
    result = claim("tested beats control", tested, {"null": control}, seed=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0] == result.line()
    assert result.holds and result.strongest.name == "null"
    parsed = parse_line(out[0])
    assert parsed["kind"] == "CLAIM" and parsed["control"] == "null" and parsed["holds"] == "True"
    assert float(parsed["value"]) == pytest.approx(tested.mean(), abs=5e-4)
    lo, hi = result.ci
    assert lo < tested.mean() < hi


def test_a_control_equal_to_the_tested_value_fails():
    tested, _ = _data()
    assert not claim("self vs self", tested, {"itself": tested.copy()}, show=False).holds
    assert not claim("self vs self", tested, {"itself": tested.copy()}, direction="less", show=False).holds


def test_a_margin_inside_the_ci_fails():
    tested, control = _data(shift=0.5)
    ok = claim("beats", tested, {"null": control}, show=False)
    lo, hi = ok.strongest.difference_ci
    assert ok.holds and lo > 0
    assert not claim("beats", tested, {"null": control}, margin=(lo + hi) / 2, show=False).holds
    assert claim("beats", tested, {"null": control}, margin=lo / 2, show=False).holds


def test_the_strongest_control_decides():
    rng = np.random.default_rng(3)
    tested = rng.normal(1.0, 0.5, 300)
    weak, strong = rng.normal(0.0, 0.5, 300), tested + rng.normal(0.0, 0.05, 300)
    result = claim("beats both", tested, {"weak": weak, "strong": strong}, show=False)
    assert result.strongest.name == "strong" and not result.holds
    assert claim("beats weak", tested, {"weak": weak}, show=False).holds


def test_direction_less():
    tested, control = _data(shift=-0.6)
    assert claim("lower", tested, {"null": control}, direction="less", show=False).holds
    assert not claim("lower", tested, {"null": control}, direction="greater", show=False).holds


def test_deterministic_for_a_seed_and_different_for_another():
    tested, control = _data(n=50, shift=0.3)
    a = claim("x", tested, {"c": control}, seed=7, show=False)
    b = claim("x", tested, {"c": control}, seed=7, show=False)
    c = claim("x", tested, {"c": control}, seed=8, show=False)
    assert a.line() == b.line() and a.ci == b.ci
    assert a.ci != c.ci


def test_paired_bootstrap_is_tighter_for_paired_data():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 100)
    tested, control = base + 0.1, base + rng.normal(0, 0.01, 100)
    paired = claim("p", tested, {"c": control}, show=False).strongest.difference_ci
    unpaired = claim("p", tested, {"c": control}, paired=False, show=False).strongest.difference_ci
    assert paired[0] > 0 and unpaired[0] < 0
    assert paired[1] - paired[0] < (unpaired[1] - unpaired[0]) / 5


def test_a_custom_statistic_on_paired_columns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    good = np.stack([y + rng.normal(0, 0.3, 300), y], 1)
    bad = np.stack([rng.normal(0, 1, 300), y], 1)

    def accuracy(s):          # (B, N, 2) -> (B,)
        return ((s[..., 0] > 0.5) == (s[..., 1] > 0.5)).mean(1)
    result = claim("accurate", good, {"random": bad}, statistic=accuracy, show=False)
    assert result.holds and result.value > 0.85 and 0.35 < result.strongest.value < 0.65


@pytest.mark.parametrize("kwargs, match", [
    (dict(tested=[], controls={"c": [1.0]}), "tested"),
    (dict(tested=[1.0, np.nan], controls={"c": [1.0, 2.0]}), "NaN"),
    (dict(tested=[1.0, 2.0], controls={"c": [1.0, 2.0, 3.0]}), "paired"),
    (dict(tested=[1.0, 2.0], controls={}), "controls"),
    (dict(tested=[1.0, 2.0], controls={"c": [np.inf, 1.0]}), "controls\\['c'\\]"),
    (dict(tested=[1.0, 2.0], controls={"c": [1.0, 2.0]}, direction="up"), "direction"),
    (dict(tested=[1.0, 2.0], controls={"c": [1.0, 2.0]}, margin=-0.1), "margin"),
    (dict(tested=[1.0, 2.0], controls={"c": [1.0, 2.0]}, n_boot=5), "n_boot"),
    (dict(tested=[1.0, 2.0], controls={"c": [1.0, 2.0]}, statistic=lambda s: s), "statistic"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        claim("s", show=False, **kwargs)


def test_unpaired_controls_may_have_other_lengths():
    tested, control = _data(n=100, shift=1.0)
    assert claim("x", tested, {"c": control[:40]}, paired=False, show=False).holds


def test_identity_needs_a_case_that_breaks_it(capsys):
    ok = identity("A equals B", 1e-7, "a non-linear head", 0.3)
    line = capsys.readouterr().out.strip()
    assert ok.holds and line == ok.line() and parse_line(line)["kind"] == "IDENTITY"
    assert not identity("A equals B", 1e-7, "a case that does not break it", 1e-8, show=False).holds
    assert not identity("A equals B", 0.2, "a non-linear head", 0.3, show=False).holds
    with pytest.raises(ValueError, match="gap"):
        identity("x", float("nan"), "y", 1.0)


def test_skipped_line_and_parser_rejects_other_text(capsys):
    line = skipped("units detect hair", "real data without concept masks")
    assert capsys.readouterr().out.strip() == line
    assert parse_line(line) == {"kind": "SKIPPED", "sentence": "units detect hair",
                                "reason": "real data without concept masks"}
    assert parse_line("accuracy 0.93 > 0.5: True") is None
    with pytest.raises(ValueError, match="reason"):
        skipped("x", "")


def test_mean_statistic_shapes():
    assert mean_statistic(np.ones((4, 10))).shape == (4,)
    assert mean_statistic(np.ones((4, 10, 3))).shape == (4,)


def test_a_comparison_shown_not_claimed_has_one_row_per_control_and_prints_nothing(capsys):
    rng = np.random.default_rng(0)
    tested = rng.normal(1.0, 0.1, 50)
    result = claim("x beats y", tested, {"close": tested - 0.01, "far": tested - 1.0}, margin=0.1, show=False)
    assert capsys.readouterr().out == ""
    rows = {r["control"]: r for r in result.table()}
    assert rows["far"]["beyond the margin 0.100"] is True and rows["close"]["beyond the margin 0.100"] is False
    assert rows["far"]["difference"].startswith("1.000") and not result.holds
