"""`kmeans_streaming`: Lloyd's algorithm over batches, one pass over the data per iteration."""

import functools
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from tlu.unsupervised.kmeans.assignment import (HIGHEST, _assign_pass, _platform,
                                                auto_chunk_size)
from tlu.unsupervised.kmeans.in_memory import KMeansResult, kmeans
from tlu.unsupervised.kmeans.lloyd import (_cluster_sums, _farthest_points,
                                           _relocate_empty, _top_rows, _update)


@functools.partial(jax.jit, static_argnames=('chunk', 'precision', 'lanes'),
                   donate_argnums=(0,))
def _stream_sums(acc, x, w, c, shift, *, chunk, precision, lanes):
  """acc + (cluster sums (k, d), weights (k,), moments (count, sum (d,), sumsq (d,)))."""
  x = x - shift
  sums, counts = _cluster_sums(x, w, c, chunk, precision, lanes=lanes)
  valid = (w > 0).astype(jnp.float32)
  moments = (jnp.sum(valid), jnp.sum(x * valid[:, None], axis=0),
             jnp.sum(jnp.square(x) * valid[:, None], axis=0))
  return jax.tree.map(jnp.add, acc, (sums, counts, moments))


@functools.partial(jax.jit, static_argnames=('chunk', 'precision'))
def _stream_farthest(best, x, w, c, shift, *, chunk, precision):
  """The running `_farthest_points` top-k `best`, merged with this batch's."""
  local = _farthest_points(x - shift, w, c, chunk, precision)
  merged = tuple(jnp.concatenate([a, b]) for a, b in zip(best, local))
  return _top_rows(merged[0], merged[1:], c.shape[0])


@functools.partial(jax.jit, static_argnames=('chunk', 'precision'))
def _stream_assign(inertia, x, w, c, shift, *, chunk, precision):
  """(inertia + this batch's inertia (), labels (b,)) for batch x (b, d)."""
  labels, _, batch_inertia = _assign_pass(x - shift, w, c, chunk, precision, True)
  return inertia + batch_inertia, labels


_stream_relocate = jax.jit(_relocate_empty)


@jax.jit
def _stream_update(sums, counts, c):
  """New centroids (k, d) and their squared total shift ()."""
  new_c = _update(sums, counts, c)
  return new_c, jnp.sum(jnp.square(new_c - c))


def _padded_batches(batches_fn):
  """Yields (x (b, d) float32, w (b,), n_real): batches padded with zero-weight rows to
  the largest size seen so far, so a short last batch does not trigger a recompile."""
  size = 0
  for batch in batches_fn():
    xb = np.asarray(batch, np.float32) if isinstance(batch, np.ndarray) else jnp.asarray(
        batch, jnp.float32)
    b = xb.shape[0]
    size = max(size, b)
    w = np.zeros((size,), np.float32)
    w[:b] = 1.0
    if b < size:
      pad = ((0, size - b), (0, 0))
      xb = np.pad(xb, pad) if isinstance(xb, np.ndarray) else jnp.pad(xb, pad)
    yield xb, w, b


def kmeans_streaming(batches_fn: Callable[[], Iterable], k, init, *, key=None,
                     max_iter=300, tol=1e-4, chunk_size=None, lanes=1,
                     return_labels=False, precision=HIGHEST):
  """Lloyd's algorithm over data that need not fit in memory: one pass per iteration.

  Each pass feeds every batch to a jitted function that adds its cluster sums and
  weights into (k, d) + (k,) accumulators; centroids move at the end of the pass.
  Peak memory is O(batch * d + chunk * k + k * d), independent of the number of
  points. From the same initial centroids the result equals `kmeans`'s up to float
  rounding (same iterations, same stopping rule, same empty-cluster rule). Runs on
  the default device, unweighted; for sharded in-memory data use `kmeans(mesh=...)`.

  Args:
    batches_fn: called once per pass; returns a fresh iterable of (b, d) batches
      (numpy or jax), the same data in the same order every time.
    k: number of clusters.
    init: (k, d) initial centroids, or 'k-means++' (seeded on the first batch only,
      with `key`).
    key: PRNG key, needed for 'k-means++'.
    max_iter, tol: as in `kmeans` (the variance in tol comes from the first pass).
    chunk_size, lanes: as in `kmeans`, within each batch.
    return_labels: if True, a final pass also collects (n,) labels (host numpy).
    precision: matmul precision.

  Returns:
    KMeansResult; `n_iter` counts Lloyd passes (the final inertia pass is extra).
  """
  if isinstance(init, str):
    if init != 'k-means++' or key is None:
      raise ValueError("init must be a (k, d) array, or 'k-means++' together with key.")
    first = jnp.asarray(next(iter(batches_fn())), jnp.float32)
    init = kmeans(key, first, k, max_iter=0).centroids
  c = jnp.asarray(init, jnp.float32)
  if c.shape[0] != k:
    raise ValueError(f'init has {c.shape[0]} centroids, expected k={k}.')
  shift = jnp.mean(c, axis=0)
  c = c - shift
  d = c.shape[1]

  def chunk_for(b):
    return min(chunk_size or auto_chunk_size(b, k, _platform()), b)

  tol_abs = None
  n_iter = 0
  for _ in range(max_iter):
    acc = (jnp.zeros((k, d)), jnp.zeros((k,)),
           (jnp.float32(0), jnp.zeros((d,)), jnp.zeros((d,))))
    for xb, w, _ in _padded_batches(batches_fn):
      # Wait for the previous batch (the next one is already loaded) so at most two
      # batches are alive: async dispatch would otherwise queue the whole pass.
      jax.block_until_ready(acc)
      acc = _stream_sums(acc, xb, w, c, shift, chunk=chunk_for(xb.shape[0]),
                         precision=precision, lanes=lanes)
    sums, counts, (count, s1, s2) = acc
    if tol_abs is None:
      mean = s1 / count
      tol_abs = float(tol * jnp.mean(s2 / count - jnp.square(mean)))
    if bool(jnp.any(counts <= 0)):
      best = (jnp.full((k,), -jnp.inf), jnp.zeros((k, d)), jnp.zeros((k,), jnp.int32),
              jnp.zeros((k,)))
      for xb, w, _ in _padded_batches(batches_fn):
        jax.block_until_ready(best)
        best = _stream_farthest(best, xb, w, c, shift, chunk=chunk_for(xb.shape[0]),
                                precision=precision)
      sums, counts = _stream_relocate(sums, counts, best)
    c, shift_sq = _stream_update(sums, counts, c)
    n_iter += 1
    if float(shift_sq) <= tol_abs:
      break

  inertia = jnp.float32(0)
  labels = [] if return_labels else None
  for xb, w, b in _padded_batches(batches_fn):
    jax.block_until_ready(inertia)
    inertia, lab = _stream_assign(inertia, xb, w, c, shift, chunk=chunk_for(xb.shape[0]),
                                  precision=precision)
    if return_labels:
      labels.append(np.asarray(lab[:b]))
  if return_labels:
    labels = np.concatenate(labels)
  return KMeansResult(c + shift, labels, inertia, jnp.int32(n_iter))
