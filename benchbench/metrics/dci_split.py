"""The exact best-split search of one tree node from its histograms, for ``dci_trees`` (DCI mode "fast").

See ``dci_trees`` for the method. Pass 1 (``_scan_dim``, per dim in sklearn's visiting order) computes
every bin-edge gain and flags the bins whose cheap bound (``_interior_dev``) reaches the best gain so
far; those whose full bound still does are listed. Pass 2 keeps the listed bins whose bound per range
of split positions (``_bin_may_reach``) reaches pass 1's best gain and rescans them row by row
(``_rescan_bin``), largest bound first. The bounds only decide what is rescanned, never the result.
All kernels are numba-compiled and release the GIL"""

from __future__ import annotations

import numba
import numpy as np

from benchbench.metrics.dci_sklearn import FEATURE_THRESHOLD, pick_among_ties

_REL_SLACK = 1e-9  # a bin is rescanned when its bound is within this (relative) of the best gain


@numba.njit(cache=True, nogil=True, inline="always")
def _proxy(sl, nl, s, n, recip):  # pragma: no cover - compiled
    """sklearn's proxy_impurity_improvement S_l^2 / n_l + S_r^2 / n_r (recip[k] = 1 / k)."""
    sr = s - sl
    return sl * sl * recip[nl] + sr * sr * recip[n - nl]


@numba.njit(cache=True, nogil=True, inline="always")
def _interior_dev(d0, sb, pb, qb, c, mu):  # pragma: no cover - compiled
    """Bounds on |d| for the splits strictly inside one bin of a node: (cheap bound^2, bound).

    Args: ``d0 = sl - nl mu`` at the bin's left edge (left prefix sum sl, count nl; mu = s / n the
    node's mean); the bin's gradient sum sb, positive part pb, sum of squares qb and count c >= 2.

    The proxy equals ``S^2 / n + n d^2 / (n_l n_r)`` with ``d = S_l - n_l mu``. Moving the bin's first
    m rows left (1 <= m <= c - 1) adds ``delta = sum_{i<=m} (g_i - mu)`` to d0; delta is bounded by the
    bin's positive and negative gradient mass and, by Cauchy-Schwarz, by ``r = sqrt((c - 1) sum (g_i -
    mu)^2)``. The first value bounds d^2 without a square root (by ``(|d0| + r)^2 <= 2 (d0^2 + r^2)``
    and by the mass bound alone), so most bins are ruled out before the second is computed.
    """
    neg = sb - pb
    if mu >= 0.0:
        hi = pb - mu
        lo = neg - (c - 1) * mu
    else:
        hi = pb - (c - 1) * mu
        lo = neg - mu
    spread = qb - 2.0 * mu * sb + c * mu * mu
    r2 = (c - 1) * (max(spread, 0.0) + 1e-12 * (qb + c * mu * mu))
    mass = max(abs(d0 + lo), abs(d0 + hi))
    cheap = min(mass * mass, 2.0 * (d0 * d0 + r2))
    return cheap, lo, hi, r2


@numba.njit(cache=True, nogil=True, inline="always")
def _clipped_dev(d0, lo, hi, r2):  # pragma: no cover - compiled
    """The bound on |d| from both the mass range [lo, hi] of delta and the Cauchy-Schwarz radius sqrt(r2)."""
    r = np.sqrt(r2)
    return max(abs(d0 + max(lo, -r)), abs(d0 + min(hi, r)))


@numba.njit(cache=True, nogil=True, inline="always")
def _least_product(nl, c, n):  # pragma: no cover - compiled
    """Smallest ``n_l n_r`` of a split inside a bin of c rows after nl (concave in n_l: at an end)."""
    return np.float64(min((nl + 1) * (n - nl - 1), (nl + c - 1) * (n - nl - c + 1)))


@numba.njit(cache=True, nogil=True, inline="always")
def _segment_may_reach(m1, m2, d0, sb, pb, q, c, mu, nl, n, margin):  # pragma: no cover - compiled
    """Whether a split after m rows of the bin, m1 <= m <= m2, may have n d^2 >= margin n_l n_r.

    Bounds delta = sum_{i<=m} (g_i - mu) for every m of the segment at once: the first m gradients
    sum to between the bin's negative and positive mass; by Cauchy-Schwarz |delta| <= sqrt(m q) and
    |delta - (sb - c mu)| <= sqrt((c - m) q), with q >= sum_bin (g_i - mu)^2.
    """
    if mu >= 0.0:
        hi = pb - m1 * mu
        lo = sb - pb - m2 * mu
    else:
        hi = pb - m2 * mu
        lo = sb - pb - m1 * mu
    fwd = np.sqrt(m2 * q)
    back = np.sqrt((c - m1) * q)
    rest = sb - c * mu
    hi = min(hi, fwd, rest + back)
    lo = max(lo, -fwd, rest - back)
    dev = max(abs(d0 + lo), abs(d0 + hi))
    least = np.float64(min((nl + m1) * (n - nl - m1), (nl + m2) * (n - nl - m2)))
    return n * dev * dev >= margin * least


@numba.njit(cache=True, nogil=True)
def _bin_may_reach(sl, nl, sb, pb, qb, c, mu, n, margin):  # pragma: no cover - compiled
    """Whether any split inside a bin (left prefix sl, nl; bin sums sb, pb, qb; c >= 2 rows) may reach
    ``n d^2 >= margin n_l n_r``: the bound of ``_segment_may_reach`` on segments of m whose length
    doubles away from either end of the bin (1, 2-3, 4-7, ... and ..., c-3 to c-2, c-1), so the small
    n_l n_r near a node's ends meets the small |delta| of few rows. Far tighter than ``_interior_dev``
    (whose one |delta| bound and one n_l n_r serve every m), and checked only on listed bins.
    """
    q = max(qb - 2.0 * mu * sb + c * mu * mu, 0.0) + 1e-12 * (qb + c * mu * mu)
    d0 = sl - nl * mu
    half = c // 2
    width = 1
    while width <= half:  # m = width .. 2 width - 1, up to half
        if _segment_may_reach(width, min(2 * width - 1, half), d0, sb, pb, q, c, mu, nl, n, margin):
            return True
        width *= 2
    width = 1
    while width <= c - 1 - half:  # m = c - (2 width - 1) .. c - width, down to half + 1
        if _segment_may_reach(c - min(2 * width - 1, c - 1 - half), c - width, d0, sb, pb, q, c, mu, nl, n, margin):
            return True
        width *= 2
    return False


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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _scan_dim(hs, hq, hp, nb, s, n, mu, margin, shift, mask, inv_pos, pre_s, pre_n, gains,
              flags):  # pragma: no cover - compiled
    """Pass 1 over the nb bins of one dim of a node (hs, hq, hp: its histogram rows).

    Fills pre_s, pre_n [nb + 1] (gradient sum and count of the node's rows before each bin; empty
    bins add nothing), gains [nb] (proxy of the split at each bin's upper edge, -inf where that is no
    split) and flags [nb] (bins of >= 2 rows whose cheap bound ``_interior_dev`` reaches the margin).
    Returns (largest edge gain, its first bin, non-empty bins, last non-empty bin). The second loop
    has no branches (IEEE division: 1 / 0 = inf where a gain is masked anyway), so that it runs on
    vector units.
    """
    sl = 0.0
    nl = 0
    filled = 0
    last = 0
    for b in range(nb):
        c = hp[b] >> shift
        pre_s[b] = sl
        pre_n[b] = nl
        sl += hs[b] if c > 0 else 0.0
        nl += c
        filled += c > 0
        last = b if c > 0 else last
    pre_s[nb] = sl
    pre_n[nb] = nl
    for b in range(nb):
        nl = pre_n[b]
        nr = pre_n[b + 1]
        c = nr - nl
        sl = pre_s[b + 1]
        sr = s - sl
        gain = sl * sl * (1.0 / nr) + sr * sr * (1.0 / (n - nr))  # _proxy, with recip[k] = 1.0 / k
        gains[b] = gain if (c > 0) & (nr < n) else -np.inf
        d0 = pre_s[b] - nl * mu
        cheap, _, _, _ = _interior_dev(d0, hs[b], (hp[b] & mask) * inv_pos, hq[b], c, mu)
        least = np.float64(min((nl + 1) * (n - nl - 1), (nl + c - 1) * (n - nl - c + 1)))
        flags[b] = (c >= 2) & (n * cheap >= margin * least)
    top = -np.inf
    top_b = 0
    for b in range(nb):
        if gains[b] > top:
            top = gains[b]
            top_b = b
    return top, top_b, filled, last


@numba.njit(cache=True, nogil=True)
def split_workspace(num_dims, num_bins, num_rows):  # pragma: no cover - compiled
    """Scratch arrays of ``best_split``, allocated once per boosting run.

    Returns:
        (cand_fb [D * B] int64 (dim * B + bin of each candidate bin), cand_sl [D * B] (left gradient sum
        before it), cand_nl [D * B] int64 (left count before it), cand_excess [D * B] (its bound minus
        the no-split proxy), rows_in_bin [N] int64 (sorted positions of a bin's rows in the node), and
        ``_scan_dim``'s pre_s [B + 1], pre_n [B + 1] int64, gains [B], flags [B] bool; then the splits
        within rounding of the best: tie_key, tie_f, tie_nl int64 and tie_gain [D * B + 4 N] (visiting rank
        * (N + 1) + rows left, dim, rows left, gain), ``dci_sklearn.rescore``'s seq [N] int64, vals [N]
        float32, and visit_f [D] int64 (the node's dims in visiting order).
    """
    size = num_dims * num_bins
    ties = size + 4 * num_rows
    return (np.empty(size, np.int64), np.empty(size), np.empty(size, np.int64), np.empty(size),
            np.empty(num_rows, np.int64), np.empty(num_bins + 1), np.empty(num_bins + 1, np.int64),
            np.empty(num_bins), np.empty(num_bins, np.bool_),
            np.empty(ties, np.int64), np.empty(ties, np.int64), np.empty(ties, np.int64), np.empty(ties),
            np.empty(num_rows, np.int64), np.empty(num_rows, np.float32), np.empty(num_dims, np.int64))


@numba.njit(cache=True, nogil=True)
def best_split(hsum, hsq, hpack, slot, nid, s, n, g, node_of, order, xs, xcol, rows, node_lo, bin_start, nbins, recip,
               pos_scale, count_unit, features, constant_features, n_known_constants, state, rank,
               work):  # pragma: no cover - compiled
    """Best split of node ``nid`` (n rows, gradient sum s; histogram in ``slot``): (proxy gain, dim, kind,
    bin or threshold, constants).

    dim is -1 if no split is valid. kind 0: split at the upper edge of bin ``b`` (returned as float);
    kind 1: inside a bin at ``threshold``. The dims are visited in the order of sklearn's splitter
    (``node_split_best``: a Fisher-Yates draw over ``features`` with its ``rand_int`` stream in
    ``state``, dims constant in the node set aside in ``constant_features``, both carried from node to
    node); ties go to the dim visited first, then to the lowest threshold, as there. Returns the
    number of constant dims the children inherit last. ``work`` is ``split_workspace(D, B, N)``.

    Pass 1 computes every bin-edge gain and lists the bins whose bound reaches the best gain so far;
    pass 2 rescans, largest bound first, those whose bound still reaches the (rising) best gain. Which
    bins are rescanned only decides the cost: the best split over all thresholds is always among them.
    """
    cand_fb, cand_sl, cand_nl, cand_excess, rows_in_bin, pre_s, pre_n, gains, flags = work[:9]
    tie_key, tie_f, tie_nl, tie_gain, seq, vals, visit_f = work[9:]
    cap = tie_key.shape[0]
    num_tie = 0
    last_sorted = -1
    num_dims, num_rows = xs.shape
    num_bins = bin_start.shape[1] - 1
    mask = count_unit - 1
    shift = np.int64(0)  # count_unit = 1 << shift: counts by a shift, not a division
    while (np.int64(1) << shift) < count_unit:
        shift += 1
    inv_pos = 1.0 / pos_scale  # a power of two: multiplying is exact
    mu = s / n
    base = s * s / n  # the proxy of not splitting; every gain is base + n d^2 / (n_l n_r)
    best = -np.inf
    best_f = -1
    best_kind = 0
    best_val = 0.0
    best_key = np.int64(-1)
    margin = -np.inf  # _cut(best) - base: a bin is listed when n d^2 >= margin * n_l n_r may hold
    num_cand = 0
    # pass 1, in sklearn's visiting order
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
        last_sorted = f  # sklearn sorts the node's samples by every dim it draws here
        hs = hsum[slot, f]
        hq = hsq[slot, f]
        hp = hpack[slot, f]
        first_cand = num_cand
        nb = nbins[f]
        top, top_b, filled, last = _scan_dim(hs, hq, hp, nb, s, n, mu, margin, shift, mask, inv_pos, pre_s, pre_n,
                                             gains, flags)
        first_tie = num_tie
        cut = _cut(max(best, top))
        for b in range(nb if top >= cut else 0):  # bin edges within rounding of the best gain so far
            if gains[b] >= cut and num_tie < cap:
                tie_key[num_tie] = visited * (num_rows + 1) + pre_n[b + 1]
                tie_f[num_tie] = f
                tie_nl[num_tie] = pre_n[b + 1]
                tie_gain[num_tie] = gains[b]
                num_tie += 1
        for b in range(nb):  # list the flagged bins whose full bound reaches the margin
            if flags[b]:
                sl = pre_s[b]
                nl = pre_n[b]
                c = pre_n[b + 1] - nl
                d0 = sl - nl * mu
                _, lo, hi, r2 = _interior_dev(d0, hs[b], (hp[b] & mask) * inv_pos, hq[b], c, mu)
                dev = _clipped_dev(d0, lo, hi, r2)
                excess = n * dev * dev / _least_product(nl, c, n)
                if excess >= margin:
                    cand_fb[num_cand] = f * num_bins + b
                    cand_sl[num_cand] = sl
                    cand_nl[num_cand] = nl
                    cand_excess[num_cand] = excess
                    num_cand += 1
        if top > best:
            best = top
            best_f = f
            best_kind = 0
            best_val = top_b
            best_key = visited * (num_rows + 1) + bin_start[f, top_b + 1]
            margin = _cut(best) - base
        if filled == 1 and _constant_in_bin(f, last, nid, node_of, order, xs, bin_start):
            num_cand = first_cand  # a constant dim is not split (nor rescanned)
            num_tie = first_tie
            features[f_j], features[n_total] = features[n_total], features[f_j]
            n_found += 1
            n_total += 1
            continue
        f_i -= 1
        features[f_i], features[f_j] = features[f_j], features[f_i]
        rank[f] = visited
        visit_f[visited] = f
        visited += 1
    for i in range(n_known_constants):  # sklearn's invariant: known constants keep their order
        features[i] = constant_features[i]
    for i in range(n_known_constants, n_total):
        constant_features[i] = features[i]
    # pass 2: keep the listed bins that may still reach the best gain of pass 1 (``_bin_may_reach``),
    # then rescan them largest bound first, so that the best gain rises early and prunes the rest
    margin = _cut(best) - base
    num_kept = 0
    for i in range(num_cand):
        if cand_excess[i] >= margin and _may_reach(i, hsum, hsq, hpack, slot, cand_fb, cand_sl, cand_nl, num_bins,
                                                    shift, mask, inv_pos, mu, n, margin):
            cand_fb[num_kept] = cand_fb[i]
            cand_sl[num_kept] = cand_sl[i]
            cand_nl[num_kept] = cand_nl[i]
            cand_excess[num_kept] = cand_excess[i]
            num_kept += 1
    for i in np.argsort(-cand_excess[:num_kept]):
        if cand_excess[i] < _cut(best) - base:
            break
        if _cut(best) - base > margin and not _may_reach(i, hsum, hsq, hpack, slot, cand_fb, cand_sl, cand_nl,
                                                         num_bins, shift, mask, inv_pos, mu, n, _cut(best) - base):
            continue  # the best gain rose since the bin was kept
        f, b = divmod(cand_fb[i], num_bins)
        best, best_f, best_kind, best_val, best_key, num_tie = _rescan_bin(
            f, b, nid, cand_sl[i], cand_nl[i], s, n, g, node_of, order, xs, bin_start, recip,
            rank[f] * (num_rows + 1), rows_in_bin, best, best_f, best_kind, best_val, best_key,
            tie_key, tie_f, tie_nl, tie_gain, num_tie,
        )
    # splits within rounding of the best: sklearn's pick among them, scored in its arithmetic
    f, thr = pick_among_ties(tie_key, tie_f, tie_nl, tie_gain, num_tie, _cut(best), visit_f, visited, nid, s, n, g,
                             node_of, order, xcol, rows, node_lo, seq, vals)
    if f >= 0:
        best_f, best_kind, best_val = f, 1, thr
    return best, best_f, best_kind, best_val, n_total, last_sorted


@numba.njit(cache=True, nogil=True, inline="always")
def _may_reach(i, hsum, hsq, hpack, slot, cand_fb, cand_sl, cand_nl, num_bins, shift, mask, inv_pos, mu, n,
               margin):  # pragma: no cover - compiled
    """``_bin_may_reach`` for listed bin i (histogram in ``slot``)."""
    f, b = divmod(cand_fb[i], num_bins)
    packed = hpack[slot, f, b]
    return _bin_may_reach(cand_sl[i], cand_nl[i], hsum[slot, f, b], (packed & mask) * inv_pos, hsq[slot, f, b],
                          packed >> shift, mu, n, margin)


@numba.njit(cache=True, nogil=True, inline="always")
def _rescan_bin(f, b, nid, sl, nl, s, n, g, node_of, order, xs, bin_start, recip, key0, rows_in_bin, best, best_f,
                best_kind, best_val, best_key, tie_key, tie_f, tie_nl, tie_gain,
                num_tie):  # pragma: no cover - compiled
    """Every split inside bin b of dim f, row by row in sorted order; returns the updated best split.

    A split before sorted position p has key ``key0 + p``; it wins on a larger gain or, on an equal
    one, a smaller key (the dim visited first, then the lowest threshold). Splits within rounding of the
    best are added to the tie lists (key0 + rows left as key). Below the root the bin's positions in the
    node are first gathered without branching (``rows_in_bin``).
    """
    lo, hi = bin_start[f, b], bin_start[f, b + 1]
    count = 0
    if n == order.shape[1]:  # the root: every row is in the node
        for p in range(lo, hi):
            rows_in_bin[count] = p
            count += 1
    else:
        for p in range(lo, hi):
            rows_in_bin[count] = p
            count += node_of[order[f, p]] == nid
    acc = 0.0
    prev = np.float32(0.0)
    for m in range(count):
        p = rows_in_bin[m]
        v = xs[f, p]
        if m > 0 and v > prev + FEATURE_THRESHOLD:
            gain = _proxy(sl + acc, nl + m, s, n, recip)
            key = key0 + p
            if gain > best or (gain == best and key < best_key):
                best = gain
                best_f = f
                best_kind = 1
                best_val = np.float64(prev) / 2.0 + np.float64(v) / 2.0
                best_key = key
            if gain >= _cut(best) and num_tie < tie_key.shape[0]:
                tie_key[num_tie] = key0 + nl + m
                tie_f[num_tie] = f
                tie_nl[num_tie] = nl + m
                tie_gain[num_tie] = gain
                num_tie += 1
        acc += g[order[f, p]]
        prev = v
    return best, best_f, best_kind, best_val, best_key, num_tie
