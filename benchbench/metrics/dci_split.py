"""Histograms and the exact best-split search of one tree node, for ``dci_trees`` (DCI mode "fast").

See ``dci_trees`` for the method: bin-edge gains from the histograms, and a row-by-row rescan only of
the bins whose interior could hold a split at least as good (``_interior_bound``). All kernels are
numba-compiled and release the GIL.
"""

from __future__ import annotations

import numba
import numpy as np

FEATURE_THRESHOLD = np.float32(1e-7)  # sklearn/tree/_partitioner.pxd: closer values are one value
_REL_SLACK = 1e-9  # a bin is rescanned when its bound is within this (relative) of the best gain


@numba.njit(cache=True, nogil=True, inline="always")
def _proxy(sl, nl, s, n, recip):  # pragma: no cover - compiled
    """sklearn's proxy_impurity_improvement S_l^2 / n_l + S_r^2 / n_r (recip[k] = 1 / k)."""
    sr = s - sl
    return sl * sl * recip[nl] + sr * sr * recip[n - nl]


@numba.njit(cache=True, nogil=True, inline="always")
def _interior_bound(sl, nl, sb, pb, qb, c, s, n):  # pragma: no cover - compiled
    """Upper bound of the proxy of any split strictly inside one bin of a node.

    Args: left prefix (gradient sum sl, count nl) before the bin; the bin's gradient sum sb, positive
    part pb, sum of squares qb and count c >= 2; the node's sum s and count n.

    The proxy equals ``S^2 / n + n d^2 / (n_l n_r)`` with ``d = S_l - n_l mu`` (mu = s / n). Moving the
    bin's first m rows left (1 <= m <= c - 1) adds ``delta = sum_{i<=m} (g_i - mu)`` to
    ``d0 = sl - nl mu``; delta is bounded by the bin's positive and negative gradient mass and, by
    Cauchy-Schwarz, by ``sqrt((c - 1) sum (g_i - mu)^2)``; ``n_l n_r`` (concave in n_l) is smallest at
    an end of its range.
    """
    mu = s / n
    d0 = sl - nl * mu
    neg = sb - pb
    if mu >= 0.0:
        hi = pb - mu
        lo = neg - (c - 1) * mu
    else:
        hi = pb - (c - 1) * mu
        lo = neg - mu
    spread = qb - 2.0 * mu * sb + c * mu * mu
    r = np.sqrt((c - 1) * (max(spread, 0.0) + 1e-12 * (qb + c * mu * mu)))
    hi = min(hi, r)
    lo = max(lo, -r)
    dev = max(abs(d0 + lo), abs(d0 + hi))
    a = (nl + 1) * (n - nl - 1)
    z = (nl + c - 1) * (n - nl - c + 1)
    return s * s / n + n * dev * dev / min(a, z)


@numba.njit(cache=True, nogil=True, inline="always")
def _rand_r(state):  # pragma: no cover - compiled
    """sklearn's ``our_rand_r`` (sklearn/utils/_random.pxd): xorshift32 on state[0], result mod 2^31."""
    x = state[0]
    if x == 0:
        x = np.uint64(1)  # DEFAULT_SEED
    x ^= (x << np.uint64(13)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(17)
    x ^= (x << np.uint64(5)) & np.uint64(0xFFFFFFFF)
    state[0] = x
    return np.int64(x % np.uint64(2147483648))


@numba.njit(cache=True, nogil=True)
def _constant_in_bin(f, b, nid, node_of, order, xs, bin_start):  # pragma: no cover - compiled
    """Whether the node's values of dim f (all in bin b) span at most FEATURE_THRESHOLD (sklearn: constant)."""
    lo = np.float32(np.inf)
    hi = np.float32(-np.inf)
    for p in range(bin_start[f, b], bin_start[f, b + 1]):
        if node_of[order[f, p]] == nid:
            lo = min(lo, xs[f, p])
            hi = max(hi, xs[f, p])
    return hi <= lo + FEATURE_THRESHOLD


@numba.njit(cache=True, nogil=True, inline="always")
def _cut(best):  # pragma: no cover - compiled
    """Bounds at or above this may hide a better (or tied) split: best minus a relative slack for rounding."""
    return best - _REL_SLACK * abs(best) if best > -np.inf else -np.inf


@numba.njit(cache=True, nogil=True)
def build_hist(hsum, hsq, hpack, slot, rows, lo, hi, bins, g, pos_scale, count_unit):  # pragma: no cover - compiled
    """Histograms of rows[lo:hi] per (dim, bin): hsum = sum of g, hsq = sum of g^2,
    hpack = count * count_unit + ceil(g+ * pos_scale).

    Packing the count and the (rounded-up) positive gradient mass into one int64 keeps two
    accumulators per row and dim; both unpack exactly (the positive mass is only used in bounds).
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


@numba.njit(cache=True, nogil=True)
def best_split(hsum, hsq, hpack, nid, s, n, g, node_of, order, xs, bin_start, nbins, recip, pos_scale,
               count_unit, features, constant_features, n_known_constants, state, rank):  # pragma: no cover
    """Best split of node ``nid`` (n rows, gradient sum s): (proxy gain, dim, kind, bin or threshold, constants).

    dim is -1 if no split is valid. kind 0: split at the upper edge of bin ``b`` (returned as float);
    kind 1: inside a bin at ``threshold``. The dims are visited in the order of sklearn's splitter
    (``node_split_best``: a Fisher-Yates draw over ``features`` with its ``rand_int`` stream in
    ``state``, dims constant in the node set aside in ``constant_features``, both carried from node to
    node); ties go to the dim visited first, then to the lowest threshold, as there. Returns the
    number of constant dims the children inherit last.
    """
    num_dims, num_rows = xs.shape
    mask = count_unit - 1
    best = -np.inf
    best_f = -1
    best_kind = 0
    best_val = 0.0
    best_key = np.int64(-1)
    # pass 1, in sklearn's visiting order: every bin edge (exact gains from the histogram) and, per
    # dim, the largest bound of the splits inside its bins
    dim_bound = np.full(num_dims, -np.inf)
    f_i = num_dims
    n_found = 0
    n_drawn = 0
    n_total = n_known_constants
    visited = 0
    while f_i > n_total:
        f_j = n_drawn + _rand_r(state) % (f_i - n_found - n_drawn)
        if f_j < n_known_constants:
            features[n_drawn], features[f_j] = features[f_j], features[n_drawn]
            n_drawn += 1
            continue
        f_j += n_found
        f = features[f_j]
        hs = hsum[nid, f]
        hq = hsq[nid, f]
        hp = hpack[nid, f]
        sl = 0.0
        nl = 0
        top = -np.inf
        filled = 0
        last = 0
        for b in range(nbins[f]):
            c = hp[b] // count_unit
            if c == 0:
                continue
            filled += 1
            last = b
            if c >= 2:
                top = max(top, _interior_bound(sl, nl, hs[b], (hp[b] & mask) / pos_scale, hq[b], c, s, n))
            sl += hs[b]
            nl += c
            if nl < n:
                gain = _proxy(sl, nl, s, n, recip)
                if gain > best:
                    best = gain
                    best_f = f
                    best_kind = 0
                    best_val = b
                    best_key = visited * (num_rows + 1) + bin_start[f, b + 1]
        if filled == 1 and _constant_in_bin(f, last, nid, node_of, order, xs, bin_start):
            features[f_j], features[n_total] = features[n_total], features[f_j]
            n_found += 1
            n_total += 1
            continue
        f_i -= 1
        features[f_i], features[f_j] = features[f_j], features[f_i]
        dim_bound[f] = top
        rank[f] = visited
        visited += 1
    for i in range(n_known_constants):  # sklearn's invariant: known constants keep their order
        features[i] = constant_features[i]
    for i in range(n_known_constants, n_total):
        constant_features[i] = features[i]
    # pass 2: rescan the bins whose interior might hold a better (or tied, earlier) split, most
    # promising dims first so that the best gain rises early and prunes the rest
    for f in np.argsort(-dim_bound):
        if dim_bound[f] < _cut(best):
            break
        hs = hsum[nid, f]
        hq = hsq[nid, f]
        hp = hpack[nid, f]
        sl = 0.0
        nl = 0
        for b in range(nbins[f]):
            c = hp[b] // count_unit
            if c == 0:
                continue
            if c >= 2 and _interior_bound(
                sl, nl, hs[b], (hp[b] & mask) / pos_scale, hq[b], c, s, n
            ) >= _cut(best):
                acc = 0.0
                m = 0
                prev = np.float32(0.0)
                for p in range(bin_start[f, b], bin_start[f, b + 1]):
                    r = order[f, p]
                    if node_of[r] != nid:
                        continue
                    v = xs[f, p]
                    if m > 0 and v > prev + FEATURE_THRESHOLD:
                        gain = _proxy(sl + acc, nl + m, s, n, recip)
                        key = rank[f] * (num_rows + 1) + p
                        if gain > best or (gain == best and key < best_key):
                            best = gain
                            best_f = f
                            best_kind = 1
                            best_val = np.float64(prev) / 2.0 + np.float64(v) / 2.0
                            best_key = key
                    acc += g[r]
                    m += 1
                    prev = v
            sl += hs[b]
            nl += c
    return best, best_f, best_kind, best_val, n_total
