"""Per-bin gradient histograms of tree nodes, for ``dci_trees`` (DCI mode "fast").

A node's histogram holds, per (code dim, bin), three sums over the node's rows: of the gradients g
(``hsum``, the only one that enters a gain), of g^2 (``hsq``) and, packed into one int64 with the row
count, of the positive parts ``ceil(max(g, 0) * pos_scale)`` (``hpack = count * count_unit + mass``);
the last two only feed the bounds of ``dci_split``. Rows are always added in increasing row index (a
node's rows stay in that order), so every float sum is the same whichever kernel builds it.

* ``build_hist``: one node, dim by dim over its rows (the children of the root).
* ``root_hists``: the roots of all T trees of a boosting round in one pass over the bins. The root
  holds every row and the T trees share bins and rows, so per (row, dim) one bin lookup feeds 2T
  contiguous float sums; the positive mass needs one integer sum, since the negative log-loss
  gradient ``[y_i == k] - p_ik`` of tree k is positive only for the row's own class (k = y_i; the
  one tree of a binary factor has k = 0), and the counts are the bins' sizes. On 10,000 x 512 codes
  this is about twice as fast as T passes of ``build_hist`` for T = 10 (1.4 times for T = 4).
* ``subtract_hist`` gives a sibling as parent minus child.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def build_hist(hsum, hsq, hpack, slot, rows, lo, hi, bins, g, pos_scale, count_unit):  # pragma: no cover - compiled
    """Histograms of rows[lo:hi] into slot ``slot`` of hsum, hsq, hpack [slots, D, B].

    Args: rows [N] row indices (increasing within a node), bins [D, N] uint8, g [N] gradients,
    pos_scale and count_unit the fixed-point scale of the positive mass and the unit of the count.
    """
    num_dims = bins.shape[0]
    hsum[slot] = 0.0
    hsq[slot] = 0.0
    hpack[slot] = 0
    m = hi - lo
    gn = np.empty(m)
    g2 = np.empty(m)
    gp = np.empty(m, np.int64)
    idx = np.empty(m, np.int64)
    for i in range(m):
        r = rows[lo + i]
        idx[i] = r
        gn[i] = g[r]
        g2[i] = g[r] * g[r]
        gp[i] = count_unit + np.int64(np.ceil(max(g[r], 0.0) * pos_scale))
    for f in range(num_dims):
        hs = hsum[slot, f]
        hq = hsq[slot, f]
        hp = hpack[slot, f]
        bf = bins[f]
        for i in range(m):
            b = bf[idx[i]]
            hs[b] += gn[i]
            hq[b] += g2[i]
            hp[b] += gp[i]


@numba.njit(cache=True, nogil=True)
def root_hists(hsum, hsq, hpack, bins, bin_start, neg, y, pos_scale, count_unit):  # pragma: no cover - compiled
    """Root histograms of the T trees of one round into slots 0 .. T-1 of hsum, hsq, hpack [slots, D, B].

    Args: bins [D, N] uint8, bin_start [D, B + 1] (bin sizes are the root's counts), neg [N, T] the
    round's gradients, y [N] class indices (used when T > 1), pos_scale and count_unit as in
    ``build_hist``. Per dim the T trees' sums accumulate side by side in a small buffer (one bin
    lookup per row), then are copied out per tree.
    """
    num_dims, num_rows = bins.shape
    num_bins = hsum.shape[2]
    trees = neg.shape[1]
    width = 2 * trees
    row = np.empty((num_rows, width))  # g_k (k < T), then g_k^2
    mass = np.empty(num_rows, np.int64)
    own = np.zeros(num_rows, np.int64)
    for i in range(num_rows):
        for k in range(trees):
            row[i, k] = neg[i, k]
            row[i, trees + k] = neg[i, k] * neg[i, k]
        if trees > 1:
            own[i] = y[i]
        mass[i] = np.int64(np.ceil(max(neg[i, own[i]], 0.0) * pos_scale))
    acc = np.empty((num_bins, width))
    acc_mass = np.empty((num_bins, trees), np.int64)
    for f in range(num_dims):
        acc[:] = 0.0
        acc_mass[:] = 0
        bf = bins[f]
        for i in range(num_rows):
            b = bf[i]
            h = acc[b]
            r = row[i]
            for j in range(width):
                h[j] += r[j]
            acc_mass[b, own[i]] += mass[i]
        for k in range(trees):
            for b in range(num_bins):
                hsum[k, f, b] = acc[b, k]
                hsq[k, f, b] = acc[b, trees + k]
                hpack[k, f, b] = (bin_start[f, b + 1] - bin_start[f, b]) * count_unit + acc_mass[b, k]


@numba.njit(cache=True, nogil=True)
def subtract_hist(hsum, hsq, hpack, out, parent, child):  # pragma: no cover - compiled
    """Sibling histograms: hist[out] = hist[parent] - hist[child]."""
    a, p, c = hsum[out].ravel(), hsum[parent].ravel(), hsum[child].ravel()
    for i in range(a.shape[0]):
        a[i] = p[i] - c[i]
    a, p, c = hsq[out].ravel(), hsq[parent].ravel(), hsq[child].ravel()
    for i in range(a.shape[0]):
        a[i] = p[i] - c[i]
    ai, pi, ci = hpack[out].ravel(), hpack[parent].ravel(), hpack[child].ravel()
    for i in range(ai.shape[0]):
        ai[i] = pi[i] - ci[i]
