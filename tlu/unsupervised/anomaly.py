"""Anomaly scores on feature vectors: higher means more anomalous.

Why these three: they are the standard training-free detectors on top of frozen
(pretrained or transferred) features, so they measure how well a representation
separates the normal class from the rest without training another model:
- k-th nearest-neighbour distance (e.g. Bergman et al. 2020, "Deep nearest neighbor
  anomaly detection"; Sun et al. 2022 with cosine distance),
- Mahalanobis distance to a Gaussian, or to the nearest class-conditional Gaussian with a
  tied covariance (Lee et al. 2018, "A simple unified framework for detecting
  out-of-distribution samples"),
- distance to the nearest k-means centroid.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tlu.unsupervised import kmeans as kmeans_lib

HIGHEST = lax.Precision.HIGHEST


@functools.partial(jax.jit, static_argnames=('k', 'metric', 'chunk'))
def _knn_kth(train, test, k, metric, chunk):
  if metric == 'cosine':
    train = train / jnp.maximum(jnp.linalg.norm(train, axis=1, keepdims=True), 1e-12)
    test = test / jnp.maximum(jnp.linalg.norm(test, axis=1, keepdims=True), 1e-12)
  else:  # A common shift leaves distances unchanged and avoids float32 cancellation.
    shift = jnp.mean(train, axis=0)
    train, test = train - shift, test - shift
  train_sq = jnp.sum(train * train, axis=1)

  def kth(q):  # (b, d) -> (b,)
    if metric == 'cosine':
      sims = jnp.dot(q, train.T, precision=HIGHEST)
      top, _ = lax.top_k(sims, k)
      return 1.0 - top[:, k - 1]
    neg_d2 = 2.0 * jnp.dot(q, train.T, precision=HIGHEST) - train_sq[None, :]
    top, _ = lax.top_k(neg_d2, k)
    d2 = jnp.sum(q * q, axis=1) - top[:, k - 1]
    return jnp.sqrt(jnp.maximum(d2, 0.0))

  m = test.shape[0]
  n_full, rem = divmod(m, chunk)
  parts = []
  if n_full:
    parts.append(lax.map(kth, test[:n_full * chunk].reshape(n_full, chunk, -1)).reshape(-1))
  if rem:
    parts.append(kth(test[n_full * chunk:]))
  return jnp.concatenate(parts)


def knn_distance_score(train_feats, test_feats, k=1, *, metric='euclidean',
                       chunk_size=None):
  """Distance from each test point to its k-th nearest training point.

  Args:
    train_feats: (n, d) features of normal data.
    test_feats: (m, d) features to score.
    k: which neighbour (1 = nearest). If the test points are the training points
      themselves, each finds itself at distance 0: use k + 1.
    metric: 'euclidean' (L2 distance) or 'cosine' (1 - cosine similarity).
    chunk_size: test rows per tile; memory is O(chunk_size * n). Default keeps the
      tile near 4M floats.

  Returns:
    (m,) float32 scores.
  """
  if metric not in ('euclidean', 'cosine'):
    raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}.")
  train = jnp.asarray(train_feats, jnp.float32)
  test = jnp.asarray(test_feats, jnp.float32)
  n, m = train.shape[0], test.shape[0]
  if not 1 <= k <= n:
    raise ValueError(f'k must be in [1, {n}], got {k}.')
  chunk = chunk_size or max(1, (1 << 22) // n)
  return _knn_kth(train, test, k, metric, min(chunk, m))


@functools.partial(jax.jit, static_argnames=('n_classes',))
def _gaussian_fit(x, labels, n_classes, shrinkage, ridge):
  """Class means (C, d) and the tied, regularised covariance (d, d)."""
  n, d = x.shape
  counts = jax.ops.segment_sum(jnp.ones((n,)), labels, n_classes)
  means = jax.ops.segment_sum(x, labels, n_classes) / jnp.maximum(counts, 1.0)[:, None]
  resid = x - means[labels]
  cov = jnp.dot(resid.T, resid, precision=HIGHEST) / n
  scale = jnp.trace(cov) / d
  cov = (1.0 - shrinkage) * cov + (shrinkage * scale + ridge * scale) * jnp.eye(d)
  return means, cov


@jax.jit
def _mahalanobis_min(test, means, cov):
  """(m, d), (C, d), (d, d) -> (m,) min over classes of squared Mahalanobis distance."""
  chol = jnp.linalg.cholesky(cov)
  solve = lambda v: jax.scipy.linalg.solve_triangular(chol, v.T, lower=True).T
  z_test = solve(test)  # whitened: ||z_x - z_mu||^2 = (x - mu)^T cov^-1 (x - mu)
  z_means = solve(means)
  d2 = (jnp.sum(z_test**2, axis=1)[:, None]
        - 2.0 * jnp.dot(z_test, z_means.T, precision=HIGHEST)
        + jnp.sum(z_means**2, axis=1)[None, :])
  return jnp.maximum(jnp.min(d2, axis=1), 0.0)


def mahalanobis_score(train_feats, test_feats, train_labels=None, *, shrinkage=0.0,
                      ridge=1e-6):
  """Squared Mahalanobis distance to the training Gaussian(s).

  Without labels: one Gaussian N(mu, S) fitted to the training features. With
  labels: one mean per class and a tied (within-class) covariance S, and the score is
  the minimum over classes (Lee et al. 2018). S is the maximum-likelihood estimate
  (divisor n), regularised as (1 - shrinkage) S + (shrinkage + ridge) * tr(S)/d * I.

  Args:
    train_feats: (n, d) features of normal data.
    test_feats: (m, d) features to score.
    train_labels: optional (n,) int class labels (0..C-1).
    shrinkage: in [0, 1], pull towards a scaled identity (for n not >> d).
    ridge: small relative diagonal loading so the Cholesky factor exists.

  Returns:
    (m,) float32 scores.
  """
  train = jnp.asarray(train_feats, jnp.float32)
  test = jnp.asarray(test_feats, jnp.float32)
  shift = jnp.mean(train, axis=0)  # float32 accuracy; distances are shift-invariant
  if train_labels is None:
    labels, n_classes = jnp.zeros((train.shape[0],), jnp.int32), 1
  else:
    classes, labels = np.unique(np.asarray(train_labels), return_inverse=True)
    labels, n_classes = jnp.asarray(labels.reshape(-1), jnp.int32), len(classes)
  means, cov = _gaussian_fit(train - shift, labels, n_classes, jnp.float32(shrinkage),
                             jnp.float32(ridge))
  return _mahalanobis_min(test - shift, means, cov)


def kmeans_distance_score(centroids, test_feats, *, chunk_size=None):
  """Euclidean distance from each test point to its nearest centroid: (k, d), (m, d) -> (m,)."""
  _, d2 = kmeans_lib.assign(test_feats, centroids, chunk_size=chunk_size)
  return jnp.sqrt(jnp.maximum(d2, 0.0))
