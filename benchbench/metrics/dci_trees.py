"""Gradient-boosted trees for DCI mode "fast": sklearn's exact best-split trees, found through histograms.

sklearn's ``GradientBoostingClassifier`` (the reference learner of DCI, metrics.md §3) fits per round
and class a depth-3 squared-error regression tree to the negative log-loss gradient, searching every
threshold between consecutive distinct training values (float32, ties within ``FEATURE_THRESHOLD`` =
1e-7), and then sets each leaf to one Newton step. Its cost grows with ``N log N * D`` per node, which
is what makes DCI take hours on 512-d codes.

This module grows the *same* trees for a fraction of that: every code dim is sorted once and cut into
at most 256 quantile bins whose edges lie between distinct values, and per node a histogram
(``dci_hist``: sum of gradients, of their squares and of their positive parts, and the count, per
bin) gives the exact gain of every split at a bin edge. A split inside a bin can only win if an upper
bound on its gain reaches the best gain found so far (``dci_split``). Writing sklearn's
``proxy_impurity_improvement`` as ``S_l^2 / n_l + S_r^2 / n_r = S^2 / n + n d^2 / (n_l n_r)`` with
``d = S_l - n_l mu``, moving the bin's first m of its c rows left changes d by ``delta_m = sum_{i<=m}
(g_i - mu)``, which lies between the bin's negative and positive gradient mass (less m mu) and, by
Cauchy-Schwarz, within ``sqrt(m q)`` of 0 and ``sqrt((c - m) q)`` of ``delta_c`` (``q = sum_bin
(g_i - mu)^2``); ``n_l n_r`` is concave in m. Pass 1 lists the bins whose bound (one range of delta
for all m, the smallest ``n_l n_r``) reaches the best gain; pass 2 rescans, row by row in sorted
order, those whose bound per range of m (ranges doubling away from the bin's ends) still reaches it.
Every node visits the dims in the order sklearn's splitter draws them (its ``rand_r`` stream seeded
per tree from ``random_state``, its Fisher-Yates and constant-dim bookkeeping, nodes split depth
first). The splits whose gain is within rounding (a relative 1e-9) of the best are then rescored in
sklearn's own arithmetic and picked by its rule, the first in visiting order with the largest value
(``dci_sklearn.rescore``; when a node has more of them than the tie list holds, as when all its
gradients are equal, every split of every dim is rescored). Those ties are common: many noise dims
isolate the same rows of a small node, and on near-separable codes many dims cut a node into the same
two sets. With sklearn's gradients, leaf values and sample order (``dci_sklearn``) the boosted model
is sklearn's bit for bit. One known difference: sklearn compares consecutive values *within a node*
against the 1e-7 threshold; here values closer than that to a neighbour anywhere in the training set
are never split apart (float32 codes almost never are).

Cost per tree: the root's histogram (N x D row-bin updates; ``dci_hist.root_hists`` builds the roots of
all trees of a round in one pass), the smaller child's of each split node above the leaves (the larger
one by subtraction), seven pass-1 scans of D x B bins and the rescans. DCI fast at 10,000 train /
5,000 test points x 512 dims with Shapes3D's factor sizes (57 trees per round, 5,700 in all) took
62-67 CPU s (122-124 s before issue 15's rewrite of these kernels; one core of a shared 2-core box,
``benchmarks/bench_suite.py --metrics dci``): about a third child histograms, a quarter root
histograms, a fifth pass 1, an eighth pass 2. Doing the tie-deciding steps in sklearn's arithmetic
raised that to 70 CPU s (4.2 to 5.7 s at 10,000 x 10).

The kernels are compiled by numba on first use (about 20-30 CPU s) and cached beside their files;
``kernel_cache.drop_stale`` deletes the cached kernels whenever any of their modules changes (numba
itself checks a kernel only against its own file).

Tree layout: heap order (node i has children 2i+1 and 2i+2), depth 3, so at most 15 nodes; ``is_split``
marks internal nodes, rows go left when ``x[feature] <= threshold`` (threshold = midpoint of the two
float32 values, in float64, as sklearn stores it).
"""

from __future__ import annotations

import numba
import numpy as np

from benchbench.metrics.dci_hist import build_hist, root_hists, subtract_hist
from benchbench.metrics.dci_sklearn import (
    children_impurity,
    impurity_improvement,
    leaf_value,
    negative_gradients,
    node_sums,
    split_order,
)
from benchbench.metrics.dci_split import FEATURE_THRESHOLD, best_split, split_workspace
from benchbench.metrics.kernel_cache import drop_stale

drop_stale()  # before any kernel is loaded from numba's cache

NUM_BINS = 256  # histogram bins per code dim (bins stored as uint8)
MAX_DEPTH = 3  # GradientBoostingClassifier's default max_depth
_NODES = 2 ** (MAX_DEPTH + 1) - 1  # 15 heap slots
_INTERNAL = 2**MAX_DEPTH - 1  # 7 nodes that may split
_DEPTH_FIRST = np.array([0, 1, 3, 4, 2, 5, 6])  # sklearn's DepthFirstTreeBuilder order of those
_EPSILON = float(np.finfo(np.float64).eps)  # sklearn/tree/_tree.pyx: impurity <= EPSILON is a leaf


def prepare(x_train: np.ndarray, num_bins: int = NUM_BINS) -> tuple[np.ndarray, ...]:
    """Sort and bin the training codes once (shared by all factors).

    Args:
        x_train: [N, D] codes (cast to float32, as sklearn's trees do).
        num_bins: bins per dim, 2..256.
    Returns:
        xcol [D, N] float32, order [D, N] int32 (argsort per dim), xs [D, N] float32 (sorted values),
        bins [D, N] uint8 (bin of each row), bin_start [D, num_bins + 1] int32 (first sorted position
        of each bin; unused bins start at N), nbins [D] int32.
    """
    if not 2 <= num_bins <= 256:
        raise ValueError(f"num_bins must be in 2..256, got {num_bins}")
    xcol = np.ascontiguousarray(np.asarray(x_train, dtype=np.float32).T)
    order = np.argsort(xcol, axis=1, kind="stable").astype(np.int32)
    xs = np.ascontiguousarray(np.take_along_axis(xcol, order, axis=1))
    bins, bin_start, nbins = _make_bins(xs, order, num_bins)
    return xcol, order, xs, bins, bin_start, nbins


@numba.njit(cache=True, nogil=True)
def _make_bins(xs, order, num_bins):  # pragma: no cover - compiled
    """Quantile bins per dim with edges only between values more than FEATURE_THRESHOLD apart."""
    num_dims, n = xs.shape
    bins = np.zeros((num_dims, n), np.uint8)
    bin_start = np.full((num_dims, num_bins + 1), n, np.int32)
    nbins = np.ones(num_dims, np.int32)
    for f in range(num_dims):
        b = 0
        bin_start[f, 0] = 0
        next_cut = n / num_bins
        for p in range(n):
            if p > 0 and p >= next_cut and b < num_bins - 1 and xs[f, p] > xs[f, p - 1] + FEATURE_THRESHOLD:
                b += 1
                bin_start[f, b] = p
                next_cut = p + (n - p) / (num_bins - b)
            bins[f, order[f, p]] = b
        nbins[f] = b + 1
    return bins, bin_start, nbins


@numba.njit(cache=True, nogil=True)
def _grow_tree(g, xcol, order, xs, bins, bin_start, nbins, hsum, hsq, hpack, recip, pos_scale, count_unit, rows, tmp,
               skr, imp, node_of, start, end, feature, threshold, is_split, importance, features, constant_features,
               n_const, rank, state, work, root_slot, root_ready):  # pragma: no cover - compiled
    """One depth-3 squared-error tree on targets g [N]; fills the node arrays and adds to importance.

    Nodes are split depth first (0, 1, 3, 4, 2, 5, 6), the order of sklearn's DepthFirstTreeBuilder,
    which carries the splitter's dim array and random stream (state) from node to node. The root's
    histogram is in slot ``root_slot`` of hsum, hsq, hpack (built here unless ``root_ready``), nodes
    1-6 in their last 6 slots; ``work`` is ``split_workspace``. rows[start[i]:end[i]] holds node i's
    rows in increasing order, skr[start[i]:end[i]] the same rows in the order of sklearn's sample array
    (``dci_sklearn.split_order``), in which node sums, impurities imp [15] and importances are computed
    as sklearn's tree builder does.
    """
    first = hsum.shape[0] - _INTERNAL  # slot of node nid > 0: first + nid
    num_rows = g.shape[0]
    for i in range(features.shape[0]):
        features[i] = i
    n_const[0] = 0
    for i in range(num_rows):
        rows[i] = i
        skr[i] = i
        node_of[i] = 0
    is_split[:] = False
    start[:] = -1
    end[:] = -1
    start[0] = 0
    end[0] = num_rows
    if not root_ready:
        build_hist(hsum, hsq, hpack, root_slot, rows, 0, num_rows, bins, g, pos_scale, count_unit)
    for nid in _DEPTH_FIRST:
        lo, hi = start[nid], end[nid]
        if lo < 0:
            continue
        n = hi - lo
        s, sq = node_sums(g, skr, lo, hi)
        if nid == 0:
            imp[0] = sq / n - (s / n) ** 2  # MSE.node_impurity; children get theirs from the split
        if n < 2 or imp[nid] <= _EPSILON:
            continue
        slot = root_slot if nid == 0 else first + nid
        best, f, kind, val, n_total, f_sorted = best_split(
            hsum, hsq, hpack, slot, nid, s, n, g, node_of, order, xs, xcol, rows, lo, bin_start, nbins, recip,
            pos_scale, count_unit, features, constant_features, n_const[nid], state, rank, work,
        )
        if f < 0:
            continue
        if kind == 0:  # bin edge: threshold between the node's largest value left and smallest right
            b = int(val)
            left_max = -np.inf
            right_min = np.inf
            for i in range(lo, hi):
                r = rows[i]
                v = np.float64(xcol[f, r])
                if bins[f, r] <= b:
                    left_max = max(left_max, v)
                else:
                    right_min = min(right_min, v)
            thr = left_max / 2.0 + right_min / 2.0
        else:
            thr = val
        nl = split_order(skr, lo, hi, nid, f_sorted, f, thr, node_of, order, xcol, rows, work[14])
        imp_left, imp_right = children_impurity(g, skr, lo, nl, hi, s, sq)
        if impurity_improvement(n, num_rows, nl, imp[nid], imp_left, imp_right) + _EPSILON < 0.0:
            continue  # DepthFirstTreeBuilder: a split that worsens the impurity (by rounding) is a leaf
        importance[f] += n * imp[nid] - nl * imp_left - (n - nl) * imp_right  # compute_feature_importances
        is_split[nid] = True
        feature[nid] = f
        threshold[nid] = thr
        left, right = 2 * nid + 1, 2 * nid + 2
        imp[left] = imp_left
        imp[right] = imp_right
        if left < _INTERNAL:
            n_const[left] = n_total
            n_const[right] = n_total
        k = lo
        j = 0
        for i in range(lo, hi):
            r = rows[i]
            if np.float64(xcol[f, r]) <= thr:
                rows[k] = r
                node_of[r] = left
                k += 1
            else:
                tmp[j] = r
                node_of[r] = right
                j += 1
        for i in range(j):
            rows[k + i] = tmp[i]
        start[left], end[left], start[right], end[right] = lo, k, k, hi
        if left < _INTERNAL:  # children may split: histogram of the smaller, the larger by subtraction
            small, large = (left, right) if k - lo <= hi - k else (right, left)
            build_hist(hsum, hsq, hpack, first + small, rows, start[small], end[small], bins, g, pos_scale, count_unit)
            subtract_hist(hsum, hsq, hpack, first + large, slot, first + small)


@numba.njit(cache=True, nogil=True)
def boost(xcol, order, xs, bins, bin_start, nbins, y, num_classes, init, x_test, rounds, learning_rate,
          tree_seeds):  # pragma: no cover - compiled
    """sklearn's GradientBoostingClassifier (log loss, defaults) on prepared codes.

    Args:
        xcol, order, xs, bins, bin_start, nbins: from ``prepare`` ([D, N] arrays).
        y: [N] class indices 0..num_classes-1 (every class present).
        num_classes: K >= 2 (one tree per round if K == 2, else K).
        init: [T] initial raw scores (``dci_sklearn.init_raw``).
        x_test: [M, D] float32 codes to score.
        rounds, learning_rate: boosting rounds and shrinkage (100, 0.1 in sklearn).
        tree_seeds: [rounds * T] uint32 seeds of the trees' splitters, in fitting order (``tree_seeds``
            gives sklearn's for a ``random_state``), so exact ties between dims go where sklearn's go.
    Returns:
        importance [D] (total impurity decrease per dim, unnormalised), raw [N, T] and raw_test [M, T]
        decision values (T = 1 for K == 2, else K).
    """
    num_dims, num_rows = xcol.shape
    num_test = x_test.shape[0]
    trees = 1 if num_classes == 2 else num_classes
    raw = np.empty((num_rows, trees))
    raw_test = np.empty((num_test, trees))
    for k in range(trees):
        raw[:, k] = init[k]
        raw_test[:, k] = init[k]
    importance = np.zeros(num_dims)
    num_bins = bin_start.shape[1] - 1
    slots = trees + _INTERNAL - 1  # the roots of a round's trees, then nodes 1-6
    hsum = np.zeros((slots, num_dims, num_bins))
    hsq = np.zeros((slots, num_dims, num_bins))
    hpack = np.zeros((slots, num_dims, num_bins), np.int64)
    recip = np.empty(num_rows + 2)
    recip[0] = np.inf
    for i in range(1, num_rows + 2):
        recip[i] = 1.0 / i
    count_bits = 1
    while (1 << count_bits) <= num_rows:
        count_bits += 1
    count_unit = np.int64(1) << (63 - count_bits)  # counts in the top bits ...
    pos_scale = float(np.int64(1) << (63 - 2 * count_bits))  # ... positive mass (|g| <= 1) below them
    rows = np.empty(num_rows, np.int64)
    tmp = np.empty(num_rows, np.int64)
    skr = np.empty(num_rows, np.int64)
    imp = np.zeros(_NODES)
    buf_g = np.empty(num_rows)
    buf_h = np.empty(num_rows)
    node_of = np.empty(num_rows, np.int8)
    start = np.empty(_NODES, np.int64)
    end = np.empty(_NODES, np.int64)
    feature = np.zeros(_NODES, np.int64)
    threshold = np.zeros(_NODES)
    is_split = np.zeros(_NODES, np.bool_)
    value = np.zeros(_NODES)
    neg = np.empty((num_rows, trees))
    g = np.empty(num_rows)
    features = np.arange(num_dims)
    constant_features = np.zeros(num_dims, np.int64)
    n_const = np.zeros(_INTERNAL, np.int64)
    rank = np.zeros(num_dims, np.int64)
    state = np.zeros(1, np.uint64)
    work = split_workspace(num_dims, num_bins, num_rows)
    tree = 0
    for _ in range(rounds):
        negative_gradients(raw, y, neg)  # at the start of the round, shared by its trees
        root_hists(hsum, hsq, hpack, bins, bin_start, neg, y, pos_scale, count_unit)  # slots 0 .. trees - 1
        for k in range(trees):
            for r in range(num_rows):
                g[r] = neg[r, k]
            state[0] = np.uint64(tree_seeds[tree])
            tree += 1
            _grow_tree(g, xcol, order, xs, bins, bin_start, nbins, hsum, hsq, hpack, recip, pos_scale, count_unit, rows,
                       tmp, skr, imp, node_of, start, end, feature, threshold, is_split, importance, features,
                       constant_features, n_const, rank, state, work, k, True)
            for nid in range(_NODES):  # Newton step per leaf (sklearn's _update_terminal_regions)
                lo, hi = start[nid], end[nid]
                if lo < 0 or is_split[nid]:
                    continue
                value[nid] = learning_rate * leaf_value(neg, k, y, rows, lo, hi, num_classes, buf_g, buf_h)
                for i in range(lo, hi):
                    raw[rows[i], k] += value[nid]
            for j in range(num_test):
                nid = 0
                while is_split[nid]:
                    nid = 2 * nid + 1 if np.float64(x_test[j, feature[nid]]) <= threshold[nid] else 2 * nid + 2
                raw_test[j, k] += value[nid]
    return importance, raw, raw_test


def tree_seeds(random_state: int, num_trees: int) -> np.ndarray:
    """The splitter seeds sklearn draws for its trees: ``randint(0, RAND_R_MAX)`` per tree from one
    ``RandomState(random_state)`` (GradientBoostingClassifier's ``_rng``; sklearn/tree/_splitter.pyx)."""
    rs = np.random.RandomState(random_state)
    return np.array([rs.randint(0, 2147483647) for _ in range(num_trees)], dtype=np.uint64)


def grow_tree(prepared: tuple[np.ndarray, ...], g: np.ndarray, seed: int = 1) -> dict[str, np.ndarray]:
    """One tree on targets g [N] (for inspection and tests): the heap arrays and the rows of every node.

    Returns:
        dict with is_split, feature, threshold [15]; start, end [15] (-1 for nodes not reached);
        rows [N] (node i holds rows[start[i]:end[i]]); importance [D] (impurity decrease per dim).
    """
    xcol, order, xs, bins, bin_start, nbins = prepared
    num_dims, num_rows = xcol.shape
    num_bins = bin_start.shape[1] - 1
    count_bits = int(num_rows).bit_length()
    out = {
        "rows": np.empty(num_rows, np.int64), "start": np.empty(_NODES, np.int64), "end": np.empty(_NODES, np.int64),
        "feature": np.zeros(_NODES, np.int64), "threshold": np.zeros(_NODES), "is_split": np.zeros(_NODES, np.bool_),
        "importance": np.zeros(num_dims),
    }
    recip = np.r_[np.inf, 1.0 / np.arange(1, num_rows + 2)]
    _grow_tree(
        np.ascontiguousarray(g, dtype=np.float64), xcol, order, xs, bins, bin_start, nbins,
        np.zeros((_INTERNAL, num_dims, num_bins)), np.zeros((_INTERNAL, num_dims, num_bins)),
        np.zeros((_INTERNAL, num_dims, num_bins), np.int64), recip, float(2 ** (63 - 2 * count_bits)),
        np.int64(1) << np.int64(63 - count_bits), out["rows"], np.empty(num_rows, np.int64),
        np.empty(num_rows, np.int64), np.zeros(_NODES), np.empty(num_rows, np.int8), out["start"], out["end"],
        out["feature"], out["threshold"], out["is_split"],
        out["importance"], np.arange(num_dims), np.zeros(num_dims, np.int64), np.zeros(_INTERNAL, np.int64),
        np.zeros(num_dims, np.int64), np.array([seed], np.uint64), split_workspace(num_dims, num_bins, num_rows),
        0, False,
    )
    return out
