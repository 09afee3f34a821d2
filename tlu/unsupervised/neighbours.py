"""Nearest neighbours of feature vectors on device: blocked top-k, cosine or Euclidean.

SCAN (Van Gansbeke et al. 2020, Section 3.1) mines the k nearest neighbours of every
image in a self-supervised feature space (the reference uses faiss' inner product on
L2-normalised features); spectral clustering's kNN affinity needs the same search. The
(Q, N) similarity matrix is never formed: queries go through in blocks of `block_size`
rows (a `lax.map`), each block scoring all N keys with one matmul and keeping its top k,
so memory is O(block_size * N).
"""

import functools

import jax
import jax.numpy as jnp

from tlu.ops import l2_normalize

HIGHEST = jax.lax.Precision.HIGHEST


@functools.partial(jax.jit, static_argnames=('k', 'metric', 'block_size'))
def _knn(queries, keys, k, metric, block_size):
  if metric == 'cosine':
    queries, keys = l2_normalize(queries), l2_normalize(keys)
  keys_sq = jnp.sum(keys * keys, axis=1)
  n_q = queries.shape[0]
  n_blocks = -(-n_q // block_size)
  padded = jnp.pad(queries, ((0, n_blocks * block_size - n_q), (0, 0)))

  def block(q):
    dots = jnp.dot(q, keys.T, precision=HIGHEST)
    # Euclidean: -||q - x||^2 up to the per-query constant ||q||^2 (same order).
    scores = dots if metric == 'cosine' else 2.0 * dots - keys_sq[None, :]
    return jax.lax.top_k(scores, k)

  scores, indices = jax.lax.map(block, padded.reshape(n_blocks, block_size, -1))
  scores = scores.reshape(-1, k)[:n_q]
  indices = indices.reshape(-1, k)[:n_q]
  if metric == 'euclidean':   # exact distances of the chosen keys (no cancellation)
    scores = jnp.linalg.norm(queries[:, None, :] - keys[indices], axis=-1)
  return indices.astype(jnp.int32), scores


def knn(queries, keys, k, *, metric='cosine', block_size=1024):
  """The k nearest keys of every query.

  Args:
    queries: (Q, D) features; keys: (N, D) features, k <= N. A query that is also a key
      finds itself first (SCAN keeps it: its neighbour set is the anchor and k others).
    metric: 'cosine' (similarity of L2-normalised vectors, highest first) or 'euclidean'
      (distance, lowest first).
    block_size: query rows scored per matmul.

  Returns:
    (indices (Q, k) int32, scores (Q, k) float32): cosine similarities, descending, or
    Euclidean distances, ascending. Ties go to the lower key index.
  """
  if metric not in ('cosine', 'euclidean'):
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
  queries = jnp.asarray(queries, jnp.float32)
  keys = jnp.asarray(keys, jnp.float32)
  if not 1 <= k <= keys.shape[0]:
    raise ValueError(f'k={k} neighbours need 1 <= k <= {keys.shape[0]} keys')
  return _knn(queries, keys, k, metric, min(block_size, queries.shape[0]))


def neighbour_agreement(indices, labels):
  """Fraction of (anchor, neighbour) pairs with the same label, the anchor's own first
  column excluded (SCAN's Table 1 diagnostic). indices (N, k + 1), labels (N,)."""
  labels = jnp.asarray(labels)
  return jnp.mean(labels[indices[:, 1:]] == labels[:, None])
