"""k-means++ initialisation, over rows that may be sharded across devices."""

import jax
import jax.numpy as jnp
from jax import lax

from tlu.unsupervised.kmeans.assignment import _psum


def _sample_points(key, x, p, t, axis_name=None):
  """t rows of x (n, d) drawn (with replacement) with probability proportional to
  p (n,) >= 0; returns (t, d).

  Inverse-CDF sampling over the global (possibly sharded) rows: every device draws
  the same uniforms, the device that owns each draw contributes the row, a psum
  broadcasts it. Rows with p == 0 (padding) are never drawn.
  """
  n = x.shape[0]
  cum = jnp.cumsum(p)
  local_total = cum[-1]
  last_pos = n - 1 - jnp.argmax(p[::-1] > 0)
  u = jax.random.uniform(key, (t,))
  if axis_name is None:
    target = u * local_total
    idx = jnp.minimum(jnp.searchsorted(cum, target, side='right'), last_pos)
    return x[idx]
  totals = lax.all_gather(local_total, axis_name)
  cum_totals = jnp.cumsum(totals)
  me = lax.axis_index(axis_name)
  last_dev = totals.shape[0] - 1 - jnp.argmax(totals[::-1] > 0)
  target = u * cum_totals[-1]
  owner = jnp.minimum(jnp.searchsorted(cum_totals, target, side='right'), last_dev)
  local_target = target - (cum_totals[me] - totals[me])
  idx = jnp.minimum(jnp.searchsorted(cum, local_target, side='right'), last_pos)
  rows = jnp.where((owner == me)[:, None], x[idx], 0.0)
  return lax.psum(rows, axis_name)


def _kmeans_plusplus(key, x, w, k, n_trials, precision, axis_name=None):
  """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; scikit-learn's greedy form).

  The first centre is drawn with probability proportional to w; each next one is the
  best (lowest resulting potential) of `n_trials` candidates drawn with probability
  proportional to w * D(x)^2. x: (n, d) local rows, w: (n,). Returns (k, d).
  Memory O(n * n_trials).
  """
  x_sq = jnp.sum(x * x, axis=1)

  def sq_dist(cands):  # (t, d) -> (n, t)
    d2 = (x_sq[:, None] - 2.0 * jnp.dot(x, cands.T, precision=precision)
          + jnp.sum(cands * cands, axis=1)[None, :])
    return jnp.maximum(d2, 0.0)

  key, sub = jax.random.split(key)
  first = _sample_points(sub, x, w, 1, axis_name)
  centers = jnp.zeros((k, x.shape[1]), jnp.float32).at[0].set(first[0])
  closest = sq_dist(first)[:, 0]

  def step(j, state):
    centers, closest, key = state
    key, sub = jax.random.split(key)
    cands = _sample_points(sub, x, closest * w, n_trials, axis_name)
    dist = jnp.minimum(closest[:, None], sq_dist(cands))
    potential = _psum(jnp.sum(dist * w[:, None], axis=0), axis_name)
    best = jnp.argmin(potential)
    return centers.at[j].set(cands[best]), dist[:, best], key

  centers, _, _ = lax.fori_loop(1, k, step, (centers, closest, key))
  return centers
