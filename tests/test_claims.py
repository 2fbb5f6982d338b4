"""The claim standard v2: a verdict (holds / refuted / inconclusive) from the bootstrap CI of the
difference to the strongest control, against a margin."""
import numpy as np
import pytest

from medxai_lib.evaluate.claims import claim, identity, parse_line, skipped
from medxai_lib.evaluate.stats import Draws


def _data(n=200, shift=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)


def test_a_clear_effect_holds_and_prints_one_parseable_line(capsys):
    tested, control = _data()
    result = claim("tested beats control", tested, {"null": control}, seed=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0] == result.line()
    assert result.verdict == "holds" and result.strongest.name == "null"
    assert out[0].endswith("| verdict: holds")
    parsed = parse_line(out[0])
    assert parsed["kind"] == "CLAIM" and parsed["control"] == "null" and parsed["verdict"] == "holds"
    assert float(parsed["value"]) == pytest.approx(tested.mean(), abs=5e-4)
    lo, hi = result.ci
    assert lo < tested.mean() < hi


def test_a_control_equal_to_the_tested_value_never_holds():
    tested, _ = _data()
    for direction in ("greater", "less"):
        same = claim("self vs self", tested, {"itself": tested.copy()}, direction=direction, show=False)
        assert same.verdict == "inconclusive"          # a difference CI of exactly [0, 0] contains the margin 0
        assert claim("self vs self", tested, {"itself": tested.copy()}, direction=direction, margin=0.1,
                     show=False).verdict == "refuted"


def test_the_three_verdicts_follow_the_difference_ci_and_the_margin():
    tested, control = _data(shift=0.5)
    ok = claim("beats", tested, {"null": control}, show=False)
    lo, hi = ok.strongest.difference_ci
    assert ok.verdict == "holds" and lo > 0
    assert claim("beats", tested, {"null": control}, margin=(lo + hi) / 2, show=False).verdict == "inconclusive"
    assert claim("beats", tested, {"null": control}, margin=lo / 2, show=False).verdict == "holds"
    refuted = claim("beats", tested, {"null": control}, margin=hi * 1.5, show=False)
    assert refuted.verdict == "refuted" and refuted.line().endswith("| verdict: refuted")
    assert parse_line(refuted.line())["verdict"] == "refuted"
    assert claim("control beats tested", control, {"tested": tested}, show=False).verdict == "refuted"
    assert claim("lower", control, {"tested": tested}, direction="less", show=False).verdict == "holds"


def test_one_refuting_control_refutes_the_claim_and_is_the_one_named():
    rng = np.random.default_rng(5)
    tested = rng.normal(1.0, 1.0, 200)
    result = claim("beats all", tested, {"weak": rng.normal(0.0, 1.0, 200), "better": tested + 0.5,
                                         "noisy": rng.normal(0.9, 5.0, 200)}, show=False)
    assert result.verdict == "refuted" and result.strongest.name == "better"
    assert claim("beats two", tested, {"weak": rng.normal(0.0, 1.0, 200), "noisy": rng.normal(0.9, 5.0, 200)},
                 show=False).verdict == "inconclusive"


def test_the_strongest_control_decides():
    rng = np.random.default_rng(3)
    tested = rng.normal(1.0, 0.5, 300)
    weak, strong = rng.normal(0.0, 0.5, 300), tested + rng.normal(0.0, 0.05, 300)
    result = claim("beats both", tested, {"weak": weak, "strong": strong}, show=False)
    assert result.strongest.name == "strong" and result.verdict != "holds"
    assert claim("beats weak", tested, {"weak": weak}, show=False).verdict == "holds"


def test_direction_less():
    tested, control = _data(shift=-0.6)
    assert claim("lower", tested, {"null": control}, direction="less", show=False).verdict == "holds"
    assert claim("lower", tested, {"null": control}, direction="greater", show=False).verdict == "refuted"


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
    assert result.verdict == "holds" and result.value > 0.85 and 0.35 < result.strongest.value < 0.65


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
    (dict(tested=[1.0, 2.0], controls={"c": [1.0, 2.0]}, margin=True), "margin"),
    (dict(tested=[1.0, 2.0], controls={"c": Draws(np.ones((3, 5)))}), "paired"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        claim("s", show=False, **kwargs)


def test_unpaired_controls_may_have_other_lengths():
    tested, control = _data(n=100, shift=1.0)
    assert claim("x", tested, {"c": control[:40]}, paired=False, show=False).verdict == "holds"


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


def test_a_random_control_enters_with_its_draws_and_widens_the_ci():
    """A control that is itself random (8 random unit groups): its spread over draws is in the CI, which
    the mean of the draws would hide."""
    rng = np.random.default_rng(2)
    tested = rng.normal(0.3, 0.2, 120)
    groups = rng.normal(0.0, 0.15, (8, 1)) + rng.normal(0.0, 0.2, (8, 120))
    as_mean = claim("x", tested, {"random groups": groups.mean(0)}, show=False)
    as_draws = claim("x", tested, {"random groups": Draws(groups, over="random unit group")}, show=False)
    width = lambda r: r.strongest.difference_ci[1] - r.strongest.difference_ci[0]  # noqa: E731
    assert width(as_draws) > 1.5 * width(as_mean)
    assert as_draws.strongest.n_draws == 8 and as_draws.strongest.value == pytest.approx(groups.mean())


def test_draws_of_one_seed_set_are_paired_on_draws():
    """Tested and control trained on the same 5 seeds: a seed that moves both cancels in the difference."""
    rng = np.random.default_rng(4)
    seed_effect = rng.normal(0.0, 1.0, (5, 1))
    tested = seed_effect + 0.3 + rng.normal(0.0, 0.1, (5, 80))
    control = seed_effect + rng.normal(0.0, 0.1, (5, 80))
    paired = claim("x", Draws(tested, over="model seed"), {"c": Draws(control, over="model seed")}, show=False)
    unpaired = claim("x", Draws(tested, over="model seed"), {"c": Draws(control, over="other seeds")}, show=False)
    assert paired.verdict == "holds" and unpaired.verdict == "inconclusive"


def test_checks_with_a_skip_reason_print_skipped_lines_instead_of_verdicts(capsys):
    from medxai_lib.evaluate.claims import checks, parse_line
    claim_, identity_ = checks("no evidence masks in this data set")
    line = claim_("a method beats a baseline", np.ones(5), {"baseline": np.zeros(5)}, margin=0.1, seed=0)
    gap_line = identity_("two maps agree", 0.0, "a slip", 1.0)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [line, gap_line]
    assert parse_line(line) == {"kind": "SKIPPED", "sentence": "a method beats a baseline",
                                "reason": "no evidence masks in this data set"}
    real_claim, real_identity = checks(None)
    assert real_claim("x", np.ones(5), {"c": np.zeros(5)}, show=False).verdict == "holds"
    assert real_identity("y", 0.0, "z", 1.0, show=False).holds
    with pytest.raises(ValueError, match="reason"):
        checks("two | parts")
