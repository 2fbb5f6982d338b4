"""The fundus phantom's vectorised vessel rasteriser equals drawing the segments one at a time."""
from __future__ import annotations

import numpy as np
import pytest

from medxai_lib.data import FundusPhantom
from medxai_lib.data.phantoms import fundus
from medxai_lib.data.phantoms.common import unit_grid


class ReferenceCanvas:
    """The drawing loop the rasteriser replaced: each segment updates the running maximum in its window,
    and the kind of a pixel is set where a segment strictly raises it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.x, self.y = unit_grid(size)
        self.vessel = np.zeros((size, size), np.float32)
        self.kind = np.zeros((size, size), np.float32)

    def segment(self, p0: np.ndarray, p1: np.ndarray, width: float, artery: bool) -> None:
        pad = width + 2.0 / self.size
        lo = np.floor((np.minimum(p0, p1) - pad) * self.size).astype(int).clip(0, self.size)
        hi = np.ceil((np.maximum(p0, p1) + pad) * self.size).astype(int).clip(0, self.size)
        if lo[0] >= hi[0] or lo[1] >= hi[1]:
            return
        window = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        xs, ys = self.x[window], self.y[window]
        d = p1 - p0
        t = np.clip(((xs - p0[0]) * d[0] + (ys - p0[1]) * d[1]) / max(float(d @ d), 1e-12), 0, 1)
        dist = np.hypot(xs - p0[0] - t * d[0], ys - p0[1] - t * d[1])
        cover = np.clip((width - dist) * self.size + 0.5, 0, 1)
        newer = cover > self.vessel[window]
        self.vessel[window] = np.maximum(self.vessel[window], cover)
        self.kind[window] = np.where(newer, float(artery), self.kind[window])


def test_random_segments_rasterise_exactly_as_drawn_one_by_one() -> None:
    rng = np.random.default_rng(0)
    for size in (17, 64, 96):
        fast, slow = fundus._Canvas(size), ReferenceCanvas(size)
        for _ in range(300):
            p0 = rng.uniform(-0.1, 1.1, 2).astype(np.float32)
            p1 = (p0 + rng.normal(0, 0.04, 2)).astype(np.float32) if rng.random() < 0.9 else p0.copy()  # some points
            width, artery = float(rng.uniform(0.2, 3.0) / size), bool(rng.random() < 0.5)
            fast.segment(p0, p1, width, artery)
            slow.segment(p0, p1, width, artery)
        assert np.array_equal(fast.vessel, slow.vessel)
        assert np.array_equal(fast.kind, slow.kind)
        assert (slow.kind > 0).any() and (slow.kind[slow.vessel > 0] == 0).any()   # both kinds drawn


def test_overlapping_segments_take_the_first_kind_at_equal_cover() -> None:
    canvas, reference = fundus._Canvas(32), ReferenceCanvas(32)
    p0, p1 = np.array([0.2, 0.5], np.float32), np.array([0.8, 0.5], np.float32)
    for artery in (False, True):          # the same segment twice: the second never raises the cover
        canvas.segment(p0, p1, 2 / 32, artery)
        reference.segment(p0, p1, 2 / 32, artery)
    assert np.array_equal(canvas.kind, reference.kind) and canvas.kind.max() == 0
    assert canvas.vessel.max() == 1


def test_an_empty_canvas_is_blank() -> None:
    canvas = fundus._Canvas(16)
    assert canvas.vessel.shape == (16, 16) and not canvas.vessel.any() and not canvas.kind.any()


@pytest.mark.parametrize("size, seed, healthy", [(96, 0, False), (64, 3, True), (33, 2, False)])
def test_rendered_fundi_equal_those_of_the_drawing_loop(monkeypatch: pytest.MonkeyPatch, size: int, seed: int,
                                                        healthy: bool) -> None:
    specs = FundusPhantom(6, size=size, seed=seed, healthy=healthy).specs
    fast = [fundus.render_fundus(s, size) for s in specs]
    monkeypatch.setattr(fundus, "_Canvas", ReferenceCanvas)
    slow = [fundus.render_fundus(s, size) for s in specs]
    for a, b in zip(fast, slow):
        assert a["boxes"] == b["boxes"]
        for key in ("image", "vessels", "fov", "lesions", "disc"):
            assert np.array_equal(a[key], b[key]), key
