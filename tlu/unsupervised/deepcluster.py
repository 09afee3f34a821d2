"""DeepCluster v2's maths (Caron et al. 2020, appendix; solo-learn's `solo/utils/kmeans.py`,
`solo/losses/deepclusterv2.py`): a memory bank of l2-normalised projections, cosine k-means
of it into prototypes and per-example assignments, and the cross-entropy against them.

Pure jax (jit, no host round trip): the memory is a (V, M, d) array of the V views'
projections of the M examples, indexed by example, each row the latest projection of its
example; `seen` (M,) marks the rows written at least once. k-means clusters the seen
rows, and an unseen example gets no assignment (-1). solo-learn's memory holds the rows
of the current epoch, by position; with epochs that cover the split it holds the same rows.
"""

import jax
import jax.numpy as jnp

from tlu.ops import l2_normalize

_HIGHEST = jax.lax.Precision.HIGHEST


def init_memory(rng, num_views, num_examples, dim):
  """(V, M, d) random unit rows (solo-learn: F.normalize(torch.randn(V, M, d), dim=-1))."""
  return l2_normalize(jax.random.normal(rng, (num_views, num_examples, dim), jnp.float32))


def update_memory(memory, seen, index, z):
  """Writes a batch into the bank: (memory with memory[v, index[n]] = z[v, n], seen with
  seen[index] = True); z (V, N, d) is stored as a constant (no gradient)."""
  z = jax.lax.stop_gradient(z).astype(memory.dtype)
  return memory.at[:, index].set(z), seen.at[index].set(True)


def init_centroids(rng, embeddings, seen, num_clusters):
  """K distinct rows of `embeddings` (M, d), drawn uniformly among the `seen` ones
  (solo-learn: memory[randperm(len(memory))[:K]]); unseen rows only if fewer are seen."""
  keys = jax.random.uniform(rng, seen.shape)
  keys = jnp.where(seen, keys, 2.0 + keys)   # seen rows first, each ordering alike likely
  return embeddings[jnp.argsort(keys)[:num_clusters]]


def assign(embeddings, centroids):
  """E step: (M,) int32 index of the centroid of largest dot product (cosine) per row."""
  scores = jnp.matmul(embeddings, centroids.T, precision=_HIGHEST)
  return jnp.argmax(scores, axis=1).astype(jnp.int32)


def spherical_kmeans(embeddings, centroids, num_iters, weights=None):
  """solo-learn's k-means on the hypersphere, one prototype head (`KMeans.cluster_memory`).

  num_iters times: E step (`assign`), M step (a centroid with assigned rows becomes their
  mean, one without keeps its value), every centroid l2-normalised; then a last E step.

  Args:
    embeddings: (M, d) unit rows; centroids: (K, d) the initial ones (unit rows).
    num_iters: k-means iterations (solo-learn's kmeans_iters, 10).
    weights: (M,) 1 for the rows that count (the memory's seen rows), 0 for the others;
      None: all.

  Returns:
    (assignments (M,) int32 of the final centroids, centroids (K, d)).
  """
  num_clusters = centroids.shape[0]
  weights = (jnp.ones(embeddings.shape[:1], jnp.float32) if weights is None
             else weights.astype(jnp.float32))

  def m_step(_, centroids):
    labels = assign(embeddings, centroids)
    sums = jax.ops.segment_sum(embeddings * weights[:, None], labels, num_clusters)
    counts = jax.ops.segment_sum(weights, labels, num_clusters)[:, None]
    centroids = jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), centroids)
    return l2_normalize(centroids)

  centroids = jax.lax.fori_loop(0, num_iters, m_step, centroids.astype(jnp.float32))
  return assign(embeddings, centroids), centroids


def cluster_memory(rng, memory, seen, num_prototypes, num_iters, init_index=None):
  """solo-learn's `cluster_memory`: one k-means per prototype head h of K_h clusters, on
  the memory of view h mod V, each from K_h random seen rows.

  Args:
    rng: PRNG key; memory: (V, M, d) unit rows; seen: (M,) bool, the rows that count.
    num_prototypes: (K_1, ..., K_H); num_iters: k-means iterations.
    init_index: None (the initial centroids drawn by `init_centroids` with head h's key
      of jax.random.split(rng, H)), or per head the (K_h,) rows that start it.

  Returns:
    (assignments (H, M) int32, -1 for unseen examples; [centroids (K_h, d)] per head).
  """
  assignments, centroids = [], []
  for h, (key, k) in enumerate(zip(jax.random.split(rng, len(num_prototypes)),
                                   num_prototypes)):
    embeddings = memory[h % memory.shape[0]]
    init = (init_centroids(key, embeddings, seen, int(k)) if init_index is None
            else embeddings[jnp.asarray(init_index[h])])
    labels, c = spherical_kmeans(embeddings, init, num_iters, weights=seen)
    assignments.append(jnp.where(seen, labels, -1))
    centroids.append(c)
  return jnp.stack(assignments), centroids


def deepclusterv2_loss(logits, targets, temperature):
  """solo-learn's `deepclusterv2_loss_func`: per head h the cross-entropy of
  logits[h] / temperature, (V, N, K_h) scores of V views, against targets[h] (N,) (every
  view predicts its example's assignment), averaged over the rows whose target is not -1
  (ignore_index=-1); then the mean over the H heads.

  A head whose batch has no assigned row (the first epoch) contributes 0 with zero
  gradient (PyTorch's mean over no rows is NaN).

  Returns:
    (loss () float32, the fraction of assigned rows ()).
  """
  losses = []
  for scores, target in zip(logits, targets):
    log_p = jax.nn.log_softmax(scores.astype(jnp.float32) / temperature, axis=-1)
    target = jnp.broadcast_to(target, scores.shape[:2])      # (V, N)
    valid = target >= 0
    picked = jnp.take_along_axis(log_p, jnp.maximum(target, 0)[..., None], axis=-1)[..., 0]
    count = jnp.sum(valid)
    losses.append(-jnp.sum(jnp.where(valid, picked, 0.0)) / jnp.maximum(count, 1))
  assigned = jnp.mean(jnp.asarray(targets) >= 0)
  return jnp.mean(jnp.stack(losses)), assigned
