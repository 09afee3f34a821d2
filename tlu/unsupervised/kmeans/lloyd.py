"""One Lloyd iteration (assign, re-seed empty clusters, move centroids) and its loop.

Every function sees the local rows of x (all rows without a mesh) and returns global
quantities: with `axis_name` set it runs inside shard_map and all-reduces.
"""

import jax
import jax.numpy as jnp
from jax import lax

from tlu.unsupervised.kmeans.assignment import _fold_chunks, _nearest, _psum, _sq_dist_to


def _cluster_sums(x, w, c, chunk, precision, axis_name=None, lanes=1):
  """One assignment pass: x (n, d), w (n,), c (k, d) -> (k, d) weighted sums and (k,)
  weights of each cluster."""
  k, d = c.shape
  c_sq = jnp.sum(c * c, axis=1)

  def fn(carry, xc, wc, start):
    del start
    sums, counts = carry
    labels = _nearest(xc, c, c_sq, precision)
    sums = sums.at[labels].add(xc * wc[:, None], mode='promise_in_bounds')
    counts = counts.at[labels].add(wc, mode='promise_in_bounds')
    return sums, counts

  zeros = (jnp.zeros((k, d), jnp.float32), jnp.zeros((k,), jnp.float32))
  sums, counts = _fold_chunks(fn, zeros, x, w, chunk, lanes,
                              lambda a, b: jax.tree.map(jnp.add, a, b))
  return _psum(sums, axis_name), _psum(counts, axis_name)


def _top_rows(d2, rows, m):
  """Rows of `rows` (a tuple of arrays with leading axis b) at the m largest d2 (b,),
  padded; returns (values (m,),) + the selected rows."""
  b = d2.shape[0]
  if b < m:
    d2 = jnp.concatenate([d2, jnp.full((m - b,), -jnp.inf, d2.dtype)])
    rows = tuple(jnp.concatenate([r, jnp.zeros((m - b,) + r.shape[1:], r.dtype)])
                 for r in rows)
  vals, idx = lax.top_k(d2, m)
  return (vals,) + tuple(r[idx] for r in rows)


def _farthest_points(x, w, c, chunk, precision, axis_name=None):
  """The k positive-weight points farthest from their nearest centroid, farthest first.

  x (n, d), w (n,), c (k, d). Returns (d2 (k,), points (k, d), old labels (k,),
  weights (k,)); slots beyond the number of usable points have d2 = -inf and weight 0.
  A running top-k merged chunk by chunk (and across devices), so memory is
  O(k * d + chunk * k).
  """
  k, d = c.shape
  c_sq = jnp.sum(c * c, axis=1)

  def fn(best, xc, wc, start):
    del start
    labels = _nearest(xc, c, c_sq, precision)
    d2 = jnp.where(wc > 0, _sq_dist_to(xc, c, labels), -jnp.inf)
    local = _top_rows(d2, (xc, labels, wc), min(k, xc.shape[0]))
    merged = tuple(jnp.concatenate([a, b]) for a, b in zip(best, local))
    return _top_rows(merged[0], merged[1:], k)

  init = (jnp.full((k,), -jnp.inf), jnp.zeros((k, d)), jnp.zeros((k,), jnp.int32),
          jnp.zeros((k,)))
  best = _fold_chunks(fn, init, x, w, chunk)
  if axis_name is not None:
    gathered = tuple(lax.all_gather(a, axis_name, tiled=True) for a in best)
    best = _top_rows(gathered[0], gathered[1:], k)
  return best


def _relocate_empty(sums, counts, farthest):
  """Moves the farthest points into the empty clusters (scikit-learn's rule).

  sums (k, d), counts (k,): cluster sums/weights; farthest: `_farthest_points` output.
  Returns the updated (sums (k, d), counts (k,)).
  """
  _, points, old_labels, weights = farthest
  k = counts.shape[0]
  empty = counts <= 0
  n_empty = jnp.sum(empty)
  moved = jnp.arange(k) < n_empty
  w_moved = jnp.where(moved, weights, 0.0)
  sums = sums - jax.ops.segment_sum(points * w_moved[:, None], old_labels, k)
  counts = counts - jax.ops.segment_sum(w_moved, old_labels, k)
  rank = jnp.clip(jnp.cumsum(empty) - 1, 0, k - 1)
  sums = jnp.where(empty[:, None], points[rank] * weights[rank][:, None], sums)
  counts = jnp.where(empty, weights[rank], counts)
  return sums, counts


def _update(sums, counts, c_old):
  """New (k, d) centroids: cluster means; a cluster with no weight keeps its old centroid."""
  safe = jnp.where(counts > 0, counts, 1.0)
  return jnp.where((counts > 0)[:, None], sums / safe[:, None], c_old)


def _lloyd_step(x, w, c, chunk, precision, axis_name=None, lanes=1):
  """One Lloyd iteration: (k, d) centroids -> (new centroids, squared total shift)."""
  sums, counts = _cluster_sums(x, w, c, chunk, precision, axis_name, lanes)
  sums, counts = lax.cond(
      jnp.any(counts <= 0),
      lambda: _relocate_empty(
          sums, counts, _farthest_points(x, w, c, chunk, precision, axis_name)),
      lambda: (sums, counts))
  new_c = _update(sums, counts, c)
  return new_c, jnp.sum(jnp.square(new_c - c))


def _lloyd(x, w, c0, tol_abs, max_iter, chunk, precision, axis_name=None, lanes=1):
  """Lloyd iterations from c0 (k, d) in a while_loop until max_iter or squared shift
  <= tol_abs; returns (centroids (k, d), iterations run () int32)."""

  def cond(state):
    _, it, shift = state
    return (it < max_iter) & (shift > tol_abs)

  def body(state):
    c, it, _ = state
    c, shift = _lloyd_step(x, w, c, chunk, precision, axis_name, lanes)
    return c, it + 1, shift

  c, n_iter, _ = lax.while_loop(cond, body, (c0, jnp.int32(0), jnp.float32(jnp.inf)))
  return c, n_iter
