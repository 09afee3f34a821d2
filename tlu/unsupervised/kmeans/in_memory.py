"""`kmeans` on an in-memory (n, d) array, on one device or with rows sharded over a mesh."""

import functools
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from tlu.train import mesh as mesh_lib
from tlu.unsupervised.kmeans.assignment import (HIGHEST, _assign_pass, _platform, _psum,
                                                auto_chunk_size)
from tlu.unsupervised.kmeans.lloyd import _lloyd
from tlu.unsupervised.kmeans.seeding import _kmeans_plusplus


class KMeansResult(NamedTuple):
  """Output of k-means.

  centroids: (k, d) float32.
  labels: (n,) int32 index of each point's nearest centroid (None when a streaming
    run was not asked for labels).
  inertia: () float32, sum_i w_i ||x_i - centroids[labels_i]||^2.
  n_iter: () int32, Lloyd iterations run (by the best of the `n_init` restarts).
  """
  centroids: jax.Array
  labels: Optional[jax.Array]
  inertia: jax.Array
  n_iter: jax.Array


def _fit(key, x, w, init, tol, max_iter, *, k, n_init, chunk, precision, use_pp, lanes,
         axis_name=None):
  """k-means on (local rows of) x (n, d) with weights w (n,); see `kmeans`.

  Returns (centroids (k, d), labels (n,), inertia (), n_iter ()).
  """
  valid = (w > 0).astype(jnp.float32)
  n_valid = _psum(jnp.sum(valid), axis_name)
  shift = _psum(jnp.sum(x * valid[:, None], axis=0), axis_name) / n_valid
  x = x - shift
  var = _psum(jnp.sum(jnp.square(x) * valid[:, None], axis=0), axis_name) / n_valid
  tol_abs = tol * jnp.mean(var)

  def run(key):
    if use_pp:
      c0 = _kmeans_plusplus(key, x, w, k, 2 + int(math.log(k)), precision, axis_name)
    else:
      c0 = init - shift
    return _lloyd(x, w, c0, tol_abs, max_iter, chunk, precision, axis_name, lanes)

  if n_init == 1:
    c, n_iter = run(key)
  else:
    keys = jax.random.split(key, n_init)

    def restart(i, best):
      c, n_iter = run(keys[i])
      _, _, inertia = _assign_pass(x, w, c, chunk, precision, False, axis_name)
      better = inertia < best[1]
      return jax.tree.map(lambda a, b: jnp.where(better, a, b), (c, inertia, n_iter),
                          best)

    c, n_iter = run(keys[0])
    _, _, inertia = _assign_pass(x, w, c, chunk, precision, False, axis_name)
    c, _, n_iter = lax.fori_loop(1, n_init, restart, (c, inertia, n_iter))
  labels, _, inertia = _assign_pass(x, w, c, chunk, precision, True, axis_name)
  return c + shift, labels, inertia, n_iter


_STATIC = ('k', 'n_init', 'chunk', 'precision', 'use_pp', 'lanes')
_fit_single = jax.jit(_fit, static_argnames=_STATIC)


@functools.lru_cache(maxsize=32)
def _fit_sharded(mesh, **static):
  """jit(shard_map(_fit)) for `mesh`: rows on `data`, everything else replicated."""
  data = P(mesh_lib.DATA)
  fn = functools.partial(_fit, axis_name=mesh_lib.DATA, **static)
  return jax.jit(jax.shard_map(
      fn, mesh=mesh, in_specs=(P(), data, data, P(), P(), P()), out_specs=(P(), data, P(), P()),
      check_vma=False))


def kmeans(key, x, k, *, n_init=1, max_iter=300, tol=1e-4, init='k-means++',
           sample_weight=None, mesh=None, chunk_size=None, lanes=1, precision=HIGHEST):
  """Clusters the rows of x into k groups with Lloyd's algorithm.

  Stopping rule, empty-cluster handling and numerics: see the package docstring.
  Compiled once per (shape, k, n_init, chunk, init kind); tol and max_iter are traced.
  Memory: x plus one centred copy, O(chunk * k) per tile, O(n * n_trials) for
  k-means++.

  Args:
    key: PRNG key for k-means++ seeding (unused with an explicit init).
    x: (n, d) data (numpy or jax); used as float32.
    k: number of clusters.
    n_init: k-means++ restarts; the run with the lowest inertia is kept. Ignored
      (treated as 1) when `init` is an array, as in scikit-learn.
    max_iter: maximum number of Lloyd iterations.
    tol: stop when the total squared centroid shift <= tol * mean feature variance.
    init: 'k-means++' or a (k, d) array of initial centroids.
    sample_weight: optional (n,) non-negative weights.
    mesh: optional `jax.sharding.Mesh` with a `data` axis: rows are sharded over it
      (padded with zero-weight rows to a multiple of its size) and each device runs
      the same code on its rows; cluster sums are all-reduced.
    chunk_size: rows per assignment tile (per device); default `auto_chunk_size`.
    lanes: tiles assigned side by side in each Lloyd pass. XLA:CPU runs a tile's
      matmul on one core and runs independent tiles concurrently, so lanes = idle
      cores speeds up a quiet multi-core CPU; on a busy machine 1 is fastest.
    precision: matmul precision (HIGHEST keeps float32 on GPU/TPU; no-op on CPU).

  Returns:
    KMeansResult(centroids (k, d), labels (n,), inertia (), n_iter ()).
  """
  x = jnp.asarray(x, jnp.float32) if not isinstance(x, np.ndarray) else x.astype(
      np.float32, copy=False)
  n, _ = x.shape
  if k > n:
    raise ValueError(f'k={k} clusters need at least k points, got n={n}.')
  use_pp = isinstance(init, str)
  if use_pp and init != 'k-means++':
    raise ValueError(f"init must be 'k-means++' or a (k, d) array, got {init!r}.")
  init_c = jnp.zeros((k, x.shape[1]), jnp.float32) if use_pp else jnp.asarray(
      init, jnp.float32)
  if init_c.shape != (k, x.shape[1]):
    raise ValueError(f'init has shape {init_c.shape}, expected {(k, x.shape[1])}.')
  w = (np.ones((n,), np.float32) if sample_weight is None
       else np.asarray(sample_weight, np.float32))
  static = dict(k=k, n_init=n_init if use_pp else 1, precision=precision, use_pp=use_pp,
                lanes=lanes)
  # Traced, not static: a different tol or max_iter does not recompile.
  tol, max_iter = jnp.float32(tol), jnp.int32(max_iter)

  if mesh is None:
    chunk = chunk_size or auto_chunk_size(n, k, _platform())
    return KMeansResult(*_fit_single(key, x, jnp.asarray(w), init_c, tol, max_iter,
                                     chunk=min(chunk, n), **static))

  n_dev = mesh.shape[mesh_lib.DATA]
  n_pad = -(-n // n_dev) * n_dev
  chunk = min(chunk_size or auto_chunk_size(n_pad // n_dev, k, _platform(mesh)),
              n_pad // n_dev)
  sharding = mesh_lib.batch_sharding(mesh)
  if n_pad != n:
    pad = n_pad - n
    x = (np.pad(x, ((0, pad), (0, 0))) if isinstance(x, np.ndarray)
         else jnp.pad(x, ((0, pad), (0, 0))))
    w = np.pad(w, (0, pad))
  x = jax.device_put(x, sharding)
  w = jax.device_put(w, sharding)
  fit = _fit_sharded(mesh, chunk=chunk, **static)
  c, labels, inertia, n_iter = fit(key, x, w, init_c, tol, max_iter)
  return KMeansResult(c, labels[:n], inertia, n_iter)
