"""sklearn's own floating-point arithmetic for the trees of DCI mode "fast" (``dci_trees``).

``dci_trees`` finds each node's best split from histograms, whose sums are rounded differently from
sklearn's running sums. That is harmless unless two splits tie to rounding, and on near-separable codes
they often do: after a few rounds the trees fit tiny residuals, and many dims cut a small node into the
same two row sets, so sklearn's choice among them is decided by the last bits of its sums. This module
redoes, in sklearn's order of operations (as in the sources of scikit-learn 1.9.1, which its wheel ships),
every step whose last bits can decide such a tie, so that the fast trees equal sklearn's bit for bit
(``tests/test_dci_sklearn.py`` checks each piece against the installed sklearn itself):

* the negative gradients of the log loss (``sklearn/_loss/_loss.pyx.tp``: ``cgradient_half_binomial``,
  ``CyHalfMultinomialLoss.gradient``) and the initial raw scores (``DummyClassifier(strategy="prior")``
  through the loss's link, ``init_raw``);
* the Newton leaf values (``sklearn/ensemble/_gb.py``: ``_update_terminal_regions``; ``np.average`` is
  numpy's pairwise sum, ``pairwise_sum``), added to the raw scores as ``learning_rate * value``;
* a node's gradient sum ``sum_total`` in the order of sklearn's sample array (``sklearn/tree/_criterion.pyx``:
  ``RegressionCriterion.init``), which after a split is the parent's rows sorted by the dim the splitter
  sorted last, then partitioned by ``DensePartitioner.partition_samples_final`` (``split_order``);
* the proxy ``S_l^2 / n_l + S_r^2 / n_r`` of the splits within rounding of the best one, with ``S_l`` the
  running sum of ``RegressionCriterion.update`` (forward, or from ``sum_total`` backwards after a long
  jump) over the node's rows in the dim's sorted order and ``S_r = sum_total - S_l``; the first split in
  the splitter's visiting order with the largest value wins (``rescore``);
* the children's impurities and the improvement check of ``DepthFirstTreeBuilder``
  (``MSE.children_impurity``, ``Criterion.impurity_improvement``; ``children_impurity``).

Rows with equal values of a dim are summed in row order here and in introsort's order there; the sums
agree whenever such rows carry equal gradients (duplicated codes do: equal codes get equal scores).
All functions are numba-compiled and release the GIL.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.special
import scipy.stats

FEATURE_THRESHOLD = np.float32(1e-7)  # sklearn/tree/_partitioner.pxd: closer values are one value
_PW_BLOCK = 128  # numpy's PW_BLOCKSIZE


@numba.njit(cache=True, nogil=True)
def _block_sum(a, lo, n):  # pragma: no cover - compiled
    """numpy's pairwise sum of a block of n <= 128 values: sequential below 8, else 8 accumulators."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def pairwise_sum(a, lo, n):  # pragma: no cover - compiled
    """numpy's ``np.add.reduce`` of the contiguous float64 values a[lo:lo + n] (``pairwise_sum_DOUBLE``,
    numpy/_core/src/umath/loops_utils.h.src): blocks of up to 128 (``_block_sum``), larger runs split in
    two halves (the first a multiple of 8) and summed left + right. The recursion runs on an explicit
    stack: numba's on-disk cache does not reload recursive functions safely (it crashed here)."""
    if n <= _PW_BLOCK:
        return _block_sum(a, lo, n)
    seg_lo = np.empty(64, np.int64)
    seg_n = np.empty(64, np.int64)
    stage = np.empty(64, np.int64)
    sums = np.empty(64)
    depth = 1
    seg_lo[0], seg_n[0], stage[0] = lo, n, 0
    done = 0
    while depth > 0:
        top = depth - 1
        m = seg_n[top]
        if m <= _PW_BLOCK:
            sums[done] = _block_sum(a, seg_lo[top], m)
            done += 1
            depth -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top] == 0:  # left half first
            stage[top] = 1
            seg_lo[depth], seg_n[depth], stage[depth] = seg_lo[top], half, 0
            depth += 1
        elif stage[top] == 1:  # then the right half
            stage[top] = 2
            seg_lo[depth], seg_n[depth], stage[depth] = seg_lo[top] + half, m - half, 0
            depth += 1
        else:  # both done: left + right
            done -= 1
            sums[done - 1] = sums[done - 1] + sums[done]
            depth -= 1
    return sums[0]


def init_raw(y: np.ndarray, num_classes: int) -> np.ndarray:
    """GradientBoostingClassifier's initial raw scores [T] (T = 1 for two classes, else K) for y [N] in 0..K-1.

    ``DummyClassifier(strategy="prior")`` probabilities clipped to [eps, 1 - eps], then the loss's link:
    ``scipy.special.logit`` of class 1 (``LogitLink``) or ``log(p / gmean(p))`` (``MultinomialLogit``).
    """
    prior = np.bincount(y, minlength=num_classes).astype(np.float64)
    prior = np.ones((1, 1)) * (prior / prior.sum())  # DummyClassifier: class_prior_ broadcast to rows
    eps = np.finfo(np.float64).eps
    proba = np.clip(prior, eps, 1 - eps, dtype=np.float64)
    if num_classes == 2:
        return scipy.special.logit(proba[:, 1])
    gm = scipy.stats.gmean(proba, axis=1)
    return np.log(proba / gm[:, None])[0]


@numba.njit(cache=True, nogil=True)
def negative_gradients(raw, y, neg):  # pragma: no cover - compiled
    """neg [N, T] = minus the log-loss gradient at raw [N, T] (T = 1: binary, y in {0, 1}), as sklearn's
    Cython loss computes it (``cgradient_half_binomial``; ``sum_exp_minus_max``, then ``p_k - [y == k]``)."""
    num_rows, trees = raw.shape
    prob = np.empty(trees)
    for r in range(num_rows):
        if trees == 1:
            yt = np.float64(y[r])
            x = raw[r, 0]
            if x > -37.0:
                e = np.exp(-x)
                neg[r, 0] = -(((1.0 - yt) - yt * e) / (1.0 + e))
            else:
                neg[r, 0] = -(np.exp(x) - yt)
            continue
        top = raw[r, 0]
        for k in range(1, trees):
            if top < raw[r, k]:
                top = raw[r, k]
        tot = 0.0
        for k in range(trees):
            prob[k] = np.exp(raw[r, k] - top)
            tot += prob[k]
        for k in range(trees):
            neg[r, k] = -(prob[k] / tot - (1.0 if y[r] == k else 0.0))


@numba.njit(cache=True, nogil=True)
def leaf_value(neg, k, y, rows, lo, hi, num_classes, buf_g, buf_h):  # pragma: no cover - compiled
    """The Newton step of one leaf (rows[lo:hi], increasing row index) of tree k, before the learning rate.

    ``_update_terminal_regions``: numerator = mean of neg, times (K - 1) / K for K > 2 classes;
    denominator = mean of prob (1 - prob) with prob = [y == k] - neg (y for a binary factor); 0 if the
    denominator is below 1e-150. Means are numpy's pairwise sums over the count.
    """
    n = hi - lo
    for i in range(n):
        r = rows[lo + i]
        g = neg[r, k]
        if num_classes == 2:
            yk = np.float64(y[r])
        else:
            yk = 1.0 if y[r] == k else 0.0
        p = yk - g
        buf_g[i] = g
        buf_h[i] = p * (1.0 - p)
    num = pairwise_sum(buf_g, 0, n) / np.float64(n)
    if num_classes > 2:
        num *= (num_classes - 1) / num_classes
    den = pairwise_sum(buf_h, 0, n) / np.float64(n)
    if abs(den) < 1e-150:
        return 0.0
    return num / den


@numba.njit(cache=True, nogil=True)
def node_sums(g, skr, lo, hi):  # pragma: no cover - compiled
    """``RegressionCriterion.init``: (sum_total, sq_sum_total) of g over sklearn's samples skr[lo:hi]."""
    s = 0.0
    sq = 0.0
    for i in range(lo, hi):
        v = g[skr[i]]
        s += v
        sq += v * v
    return s, sq


@numba.njit(cache=True, nogil=True)
def _left_sum(g, seq, pos, new_pos, end, sum_left, s):  # pragma: no cover - compiled
    """``RegressionCriterion.update`` from pos to new_pos over rows seq[0:end]: the new sum_left."""
    if new_pos - pos <= end - new_pos:
        for p in range(pos, new_pos):
            sum_left += g[seq[p]]
        return sum_left
    sum_left = s  # reverse_reset
    for p in range(end - 1, new_pos - 1, -1):
        sum_left -= g[seq[p]]
    return sum_left


@numba.njit(cache=True, nogil=True)
def pick_among_ties(tie_key, tie_f, tie_nl, tie_gain, num_tie, cut, visit_f, visited, nid, s, n, g, node_of, order,
                    xcol, rows, lo, seq, vals):  # pragma: no cover - compiled
    """sklearn's split among the listed splits with gain >= cut (``dci_split.best_split``'s tie lists):
    (dim, threshold), dim -1 to keep the histogram search's pick (fewer than two such splits).

    A full list (as many entries as it holds) may have dropped some: then every split of the node's
    visited dims (visit_f[:visited], in visiting order) is rescored. The lists are reordered in place.
    """
    if num_tie >= tie_key.shape[0]:  # a plateau of near-equal splits, e.g. a node of equal gradients
        f, _, thr = rescore(visit_f, tie_nl, visited, True, nid, s, n, g, node_of, order, xcol, rows, lo, seq, vals)
        return f, thr
    num_close = 0
    for i in range(num_tie):
        if tie_gain[i] >= cut:
            tie_key[num_close] = tie_key[i]
            tie_f[num_close] = tie_f[i]
            tie_nl[num_close] = tie_nl[i]
            num_close += 1
    if num_close < 2:
        return -1, 0.0
    idx = np.argsort(tie_key[:num_close])
    f, _, thr = rescore(tie_f[idx], tie_nl[idx], num_close, False, nid, s, n, g, node_of, order, xcol, rows, lo, seq,
                        vals)
    return f, thr


@numba.njit(cache=True, nogil=True)
def rescore(cand_f, cand_nl, num, every, nid, s, n, g, node_of, order, xcol, rows, lo, seq,
            vals):  # pragma: no cover - compiled
    """sklearn's pick among candidate splits (dim cand_f[i] with cand_nl[i] rows left), scored its way.

    Candidates must be sorted by (visiting rank, n_l). For each candidate dim the node's rows are walked
    in sorted order as ``node_split_best`` does (``next_p`` skips values within FEATURE_THRESHOLD; the
    criterion updates forward, or backwards from sum_total s after a long jump), and the proxy
    ``S_l^2 / n_l + S_r^2 / n_r`` (divisions, as ``MSE.proxy_impurity_improvement``) of each candidate
    position is compared with a strict ``>`` in candidate order. With ``every``, every split position of
    each candidate dim is scored (one entry per dim suffices), as sklearn does. seq [N] int64 and vals [N]
    float32 are scratch. Returns (dim, n_l, threshold), dim -1 if no candidate is a split position.
    """
    best = -np.inf
    best_f = -1
    best_nl = 0
    best_thr = 0.0
    i = 0
    while i < num:
        f = cand_f[i]
        sorted_rows(f, nid, rows, lo, n, node_of, order, xcol, seq, 0, vals)
        sum_left = 0.0
        pos = 0
        while i < num and cand_f[i] == f:
            target = n - 1 if every else cand_nl[i]
            while pos < target:  # next_p, then update, at every split position up to the candidate's
                p = pos + 1
                while p < n and vals[p] <= vals[p - 1] + FEATURE_THRESHOLD:
                    p += 1
                if p >= n:
                    pos = n
                    break
                sum_left = _left_sum(g, seq, pos, p, n, sum_left, s)
                pos = p
                if every:
                    _, best, best_f, best_nl, best_thr = _score(sum_left, s, pos, n, f, vals, best, best_f, best_nl,
                                                                best_thr)
            if pos == target and not every:
                _, best, best_f, best_nl, best_thr = _score(sum_left, s, pos, n, f, vals, best, best_f, best_nl,
                                                            best_thr)
            i += 1
    return best_f, best_nl, best_thr


@numba.njit(cache=True, nogil=True, inline="always")
def _score(sum_left, s, nl, n, f, vals, best, best_f, best_nl, best_thr):  # pragma: no cover - compiled
    """``MSE.proxy_impurity_improvement`` of the split after nl sorted rows (values vals) and sklearn's
    update of the best split (strict ``>``): (proxy, best, best_f, best_nl, best_thr)."""
    sum_right = s - sum_left
    proxy = sum_left * sum_left / np.float64(nl) + sum_right * sum_right / np.float64(n - nl)
    if proxy > best:
        return proxy, proxy, f, nl, np.float64(vals[nl - 1]) / 2.0 + np.float64(vals[nl]) / 2.0
    return proxy, best, best_f, best_nl, best_thr


@numba.njit(cache=True, nogil=True)
def split_order(skr, lo, hi, nid, f_sorted, f, thr, node_of, order, xcol, rows,
                vals):  # pragma: no cover - compiled
    """sklearn's sample order of the node's rows after its split, in place in skr[lo:hi].

    ``node_split_best`` leaves samples[start:end] sorted by the last dim it sorted (``f_sorted``; rows
    with equal values in row order here), then ``partition_samples_final`` walks it, keeping rows with
    ``x[f] <= thr`` and swapping each other row with the last unexamined one. Rows must still carry
    ``node_of == nid``; rows[lo:hi] holds them in increasing order, vals [N] float32 is scratch. Returns
    the number of rows left.
    """
    sorted_rows(f_sorted, nid, rows, lo, hi - lo, node_of, order, xcol, skr, lo, vals)
    return _partition(skr, lo, hi, f, thr, xcol)


@numba.njit(cache=True, nogil=True)
def sorted_rows(f, nid, rows, lo, n, node_of, order, xcol, out, at, vals):  # pragma: no cover - compiled
    """The node's n rows (rows[lo:lo + n], increasing) sorted by dim f, equal values in row order, into
    out[at:at + n], their float32 values into vals[0:n]: by a stable sort of the node's values when the
    node is small, else by a scan of the global order [D, N] (node rows marked ``node_of == nid``)."""
    num_rows = order.shape[1]
    if 8 * n * (1 + int(np.log2(n + 1))) < num_rows:
        v = np.empty(n, np.float32)
        for i in range(n):
            v[i] = xcol[f, rows[lo + i]]
        idx = np.argsort(v, kind="mergesort")
        for i in range(n):
            out[at + i] = rows[lo + idx[i]]
            vals[i] = v[idx[i]]
        return
    m = 0
    for q in range(num_rows):
        if m == n:
            break
        r = order[f, q]
        out[at + m] = r
        vals[m] = xcol[f, r]
        m += node_of[r] == nid


@numba.njit(cache=True, nogil=True)
def _partition(skr, lo, hi, f, thr, xcol):  # pragma: no cover - compiled
    """``partition_samples_final`` on skr[lo:hi] with codes xcol [D, N]: the number of rows left."""
    start = lo
    end = hi
    while start < end:
        if np.float64(xcol[f, skr[start]]) <= thr:
            start += 1
        else:
            end -= 1
            skr[start], skr[end] = skr[end], skr[start]
    return start - lo


@numba.njit(cache=True, nogil=True)
def children_impurity(g, skr, lo, nl, hi, s, sq):  # pragma: no cover - compiled
    """``criterion.reset(); update(pos); children_impurity()`` after the split: (impurity left, right).

    skr[lo:lo + nl] is the left child in sklearn's order, s and sq the node's sums (``node_sums``).
    """
    n = hi - lo
    sum_left = _left_sum(g, skr[lo:hi], 0, nl, n, 0.0, s)
    sum_right = s - sum_left
    sq_left = 0.0
    for p in range(lo, lo + nl):
        v = g[skr[p]]
        sq_left += v * v
    wl = np.float64(nl)
    wr = np.float64(n - nl)
    imp_left = sq_left / wl - (sum_left / wl) ** 2
    imp_right = (sq - sq_left) / wr - (sum_right / wr) ** 2
    return imp_left, imp_right


@numba.njit(cache=True, nogil=True, inline="always")
def impurity_improvement(n, num_rows, nl, impurity, imp_left, imp_right):  # pragma: no cover - compiled
    """``Criterion.impurity_improvement`` of a split of n rows (num_rows in the tree's sample)."""
    wn = np.float64(n)
    return (wn / np.float64(num_rows)) * (impurity - (np.float64(n - nl) / wn * imp_right)
                                          - (np.float64(nl) / wn * imp_left))
