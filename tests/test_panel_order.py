"""Every other step of a small batch reads W_hh's panels last to first (PanelOrder in
cpp/include/lstmcore/packed_product.hpp), so that it starts on the panels the step before
left in cache. Both orders must give the same bits: each column summed as before, every
panel once, in the kernel it runs in forward (pairs of panels from the first for one or
two rows of a batch), on partial last panels, odd and even panel counts, and depths that
cross a depth block (256)."""

import numpy as np
import pytest

from lstmcore import _core

product = _core.diagnostics.panel_ordered_product

# n: one partial panel, whole panels, and partial last panels after one, two and four
# (float32's panels are 32 columns wide on AVX-512, 16 on AVX2; float64's half that).
COLUMNS = [7, 32, 70, 96, 161]
DEPTHS = [5, 256, 300, 530]
# rows: a batch of one, a batch's lone row or two (pairs of panels), a tile, two tiles.
ROWS = [(1, True), (1, False), (2, False), (3, False), (8, False), (13, False)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", COLUMNS)
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("rows,batch_of_one", ROWS)
def test_both_panel_orders_give_the_same_bits(dtype, n, depth, rows, batch_of_one):
    rng = np.random.default_rng(n * 1000 + depth + rows)
    a = rng.standard_normal((rows, depth)).astype(dtype)
    w = rng.standard_normal((n, depth)).astype(dtype)
    forward = product(a, w, batch_of_one, False)
    backward = product(a, w, batch_of_one, True)
    assert backward.shape == (rows, n)
    np.testing.assert_array_equal(backward, forward)
    expected = a.astype(np.float64) @ w.astype(np.float64).T
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(backward, expected, rtol=tolerance, atol=tolerance * np.sqrt(depth))


def test_a_product_of_no_columns_is_empty_in_either_order():
    a = np.ones((1, 4), np.float32)
    for batch_of_one in (True, False):  # False: a lone row of a batch, panels in pairs
        for last_to_first in (False, True):
            assert product(a, np.ones((0, 4), np.float32), batch_of_one, last_to_first).shape == (1, 0)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"expected a \(rows, depth\) and w \(n, depth\)"):
        product(np.ones((1, 4), np.float32), np.ones((3, 5), np.float32), True, True)
