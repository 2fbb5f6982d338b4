"""nbval's sanitizer (notebooks/nbval_sanitize.cfg) hides a claim's digits but never its sentence or verdict."""
import re
from pathlib import Path

from nbval.plugin import get_sanitize_patterns

CFG = Path(__file__).resolve().parents[1] / "notebooks" / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    for regex, replace in get_sanitize_patterns(CFG.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_digits_of_a_claim_are_hidden():
    a = "CLAIM x beats y (margin 0.300) | 0.557 [0.514, 0.603] vs constant 1.2e-07 [-0.221, 3.000] | holds: True"
    b = "CLAIM x beats y (margin 0.300) | 0.553 [0.509, 0.598] vs constant 9.9e-08 [-0.360, 2.900] | holds: True"
    assert sanitize(a) == sanitize(b)
    assert "<num>" in sanitize(a) and "0.557" not in sanitize(a)


def test_verdict_sentence_and_control_survive():
    line = "CLAIM x beats y (margin 0.300) | 0.557 [0.514, 0.603] vs constant 0.1 [0.0, 0.2] | holds: True"
    assert sanitize(line) != sanitize(line.replace("holds: True", "holds: False"))
    assert sanitize(line) == sanitize(line.replace("vs constant", "vs two copy counts drawn at random"))
    assert sanitize(line) != sanitize(line.replace("x beats y", "y beats x"))
    assert sanitize("IDENTITY s | gap 1e-07 | holds: True") != sanitize("SKIPPED s | no masks")


def test_the_closest_control_may_change_but_not_the_verdict():
    a = "CLAIM g rises (margin 0.300) | 2.691 [2.1, 3.2] vs the grading rule's change 0.000 [0.000, 0.000] | holds: True"
    b = "CLAIM g rises (margin 0.300) | 2.507 [2.0, 3.0] vs two copy counts drawn at random -0.120 [-0.4, 0.2] | holds: True"
    assert sanitize(a) == sanitize(b)
    assert sanitize(a) != sanitize(b.replace("holds: True", "holds: False"))
    assert "vs <control> <num> [<num>, <num>]" in sanitize(a)
