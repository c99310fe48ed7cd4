"""Views box(t) = b + (I - b)·t, their masks and crops, and DynRefer's greedy pHash choice."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from stablesemantics.regions.select import (
    dynamic_view_sets,
    phash_bits,
    phash_scores,
    select_views,
)
from stablesemantics.regions.views import (
    CANDIDATE_TS,
    T_GRID,
    ViewBank,
    box_mask,
    render_view,
    view_bank,
    view_box,
)


def test_candidate_grid_is_dynrefers():
    assert CANDIDATE_TS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert T_GRID[0] == 0.0 and T_GRID[1:] == CANDIDATE_TS


def test_view_box_interpolates_from_box_to_image():
    box = (10, 20, 30, 40)
    assert view_box(box, (64, 128), 0.0).tolist() == [10, 20, 30, 40]
    assert view_box(box, (64, 128), 1.0).tolist() == [
        0,
        0,
        128,
        64,
    ]  # (H, W) = (64, 128)
    # by hand: x0 = 10 - 10·0.25, y0 = 20 - 20·0.25, x1 = 30 + 98·0.25, y1 = 40 + 24·0.25
    assert view_box(box, (64, 128), 0.25).tolist() == [7.5, 15.0, 54.5, 46.0]


def test_view_boxes_grow_and_always_contain_the_region():
    box = np.array([5.0, 40.0, 17.0, 60.0])
    prev = box
    for t in T_GRID[1:]:
        vb = view_box(box, (64, 64), t)
        assert vb[0] <= box[0] and vb[1] <= box[1] and vb[2] >= box[2] and vb[3] >= box[3]
        assert vb[0] <= prev[0] and vb[2] >= prev[2]
        prev = vb


@pytest.mark.parametrize("t", [-0.1, 1.5])
def test_view_box_rejects_t_outside_0_1(t):
    with pytest.raises(ValueError):
        view_box((0, 0, 4, 4), (8, 8), t)


def test_view_box_rejects_empty_boxes():
    with pytest.raises(ValueError):
        view_box((4, 0, 4, 4), (8, 8), 0.5)


def test_box_mask_whole_and_fractional_pixels():
    m = box_mask((2, 2, 4, 4), (0, 0, 8, 8), 4)  # half scale: the box is view pixel (1, 1)
    expected = np.zeros((4, 4))
    expected[1, 1] = 1
    np.testing.assert_allclose(m, expected)
    m = box_mask((1, 0, 3, 8), (0, 0, 8, 8), 4)  # x in [0.5, 1.5): half of columns 0 and 1
    np.testing.assert_allclose(m[:, 0], 0.5)
    np.testing.assert_allclose(m[:, 1], 0.5)
    np.testing.assert_allclose(m[:, 2:], 0.0)


def test_render_view_at_t0_is_the_box_and_at_t1_the_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    v = render_view(img, (8, 4, 24, 20), t=0.0, size=16)  # a 16x16 box at 16x16: an exact crop
    assert v.t == 0.0
    np.testing.assert_array_equal(v.pixels, img[4:20, 8:24])
    np.testing.assert_allclose(v.mask, 1.0)
    v = render_view(img, (8, 4, 24, 20), t=1.0, size=32)
    assert v.t == 1.0 and v.box.tolist() == [0, 0, 32, 32]
    np.testing.assert_array_equal(v.pixels, img)
    assert v.mask.sum() == pytest.approx(16 * 16)  # the box's area at scale 1


def test_render_view_does_not_read_outside_the_view():
    img = np.zeros((32, 32, 3), np.uint8)
    img[8:16, 8:16] = 200  # the region; everything around is black
    v = render_view(img, (8, 8, 16, 16), t=0.0, size=4)  # shrinking: the filter must stay inside
    assert v.pixels.min() == 200


def test_view_bank_records_every_t():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    boxes = np.array([[2, 3, 10, 12], [20, 20, 30, 31]], float)
    bank = view_bank(images, [1, 0], boxes, ts=(0.0, 0.5, 1.0), size=8)
    assert bank.pixels.shape == (2, 3, 8, 8, 3) and bank.masks.shape == (2, 3, 8, 8)
    assert bank.ts.tolist() == [0.0, 0.5, 1.0] and bank.t_index(0.5) == 1
    np.testing.assert_array_equal(bank.pixels[0, 1], render_view(images[1], boxes[0], 0.5, 8).pixels)
    np.testing.assert_array_equal(bank.pixels[1, 2], render_view(images[0], boxes[1], 1.0, 8).pixels)
    with pytest.raises(ValueError):
        bank.t_index(0.3)


# ----------------------------------------------------------------------------- pHash selection


def _stripes(vertical: bool, period: int = 16, size: int = 32) -> np.ndarray:
    ramp = (np.arange(size) // (period // 2)) % 2 * 255
    grid = np.tile(ramp, (size, 1)) if vertical else np.tile(ramp[:, None], (1, size))
    return np.repeat(grid[:, :, None], 3, 2).astype(np.uint8)


def _hamming(a: np.ndarray, b: np.ndarray) -> int:
    return imagehash.phash(Image.fromarray(a)) - imagehash.phash(Image.fromarray(b))


def test_phash_bits_match_imagehash_distance():
    a, b = _stripes(True), _stripes(False)
    assert phash_bits(a).shape == (64,)
    assert int(np.count_nonzero(phash_bits(a) ^ phash_bits(b))) == _hamming(a, b)


def test_identical_views_score_zero_and_differences_divide_by_t():
    base, other = _stripes(True), _stripes(False)
    d = _hamming(base, other)
    assert d > 0  # vertical vs horizontal stripes differ
    np.testing.assert_allclose(
        phash_scores(base, [base, other, other], [0.1, 0.5, 0.25]),
        [0.0, d / 0.5, d / 0.25],
    )


def test_select_prefers_the_different_view():
    base, other = _stripes(True), _stripes(False)
    assert select_views(base, [base, other, base], [0.1, 0.5, 0.9], n_views=2) == [1]


def test_select_prefers_less_context_among_equally_different_views():
    base, other = _stripes(True), _stripes(False)
    assert select_views(base, [other, other, other], [0.6, 0.2, 0.9], n_views=2) == [1]
    assert select_views(base, [other, other, other], [0.6, 0.2, 0.9], n_views=4) == [
        1,
        0,
        2,
    ]


def test_select_follows_distance_over_t_on_mixed_images():
    rng = np.random.default_rng(3)
    base = _stripes(True)
    cands = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)] + [base]
    ts = [0.2, 0.4, 0.6, 0.8, 1.0, 0.1]
    expected = np.argsort([-_hamming(base, c) / t for c, t in zip(cands, ts)], kind="stable")[:3]
    assert select_views(base, cands, ts, n_views=4) == expected.tolist()
    assert 5 not in select_views(base, cands, ts, n_views=6)[:5]  # the copy of the base comes last


def test_select_rejects_impossible_requests():
    base = _stripes(True)
    with pytest.raises(ValueError):
        select_views(base, [base], [0.5], n_views=3)
    with pytest.raises(ValueError):
        phash_scores(base, [base], [0.0])


def test_dynamic_view_sets_keep_the_tight_view_first():
    base, other = _stripes(True), _stripes(False)
    pixels = np.stack([np.stack([base, base, other, base]), np.stack([other, other, other, base])])
    bank = ViewBank(
        pixels=pixels,
        masks=np.zeros(pixels.shape[:4], np.uint8),
        ts=np.array([0.0, 0.1, 0.5, 1.0]),
    )
    sets = dynamic_view_sets(bank, n_views=2)
    assert sets.tolist() == [
        [0, 2],
        [0, 3],
    ]  # region 0: the odd one out; region 1: the only different one
    assert dynamic_view_sets(bank, n_views=1).tolist() == [[0], [0]]
