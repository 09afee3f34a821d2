"""Spectral clustering on device: an affinity, its normalised-Laplacian embedding, k-means.

Dense path (Ng, Jordan & Weiss 2001, "On spectral clustering: analysis and an
algorithm"): affinity A (N, N), D = diag(A 1), M = D^-1/2 A D^-1/2 (the normalised
Laplacian is I - M); the k leading eigenvectors of M (`jnp.linalg.eigh`) as columns of
U (N, k); rows of U normalised to unit length (NJW's Y; `normalize='degree'` instead
gives D^-1/2 U, scikit-learn's `spectral_embedding`); k-means (`tlu.unsupervised.kmeans`)
on the rows. O(N^2) memory and O(N^3) time: `max_dense` bounds it.

Landmark path (Chen & Cai 2011, "Large scale spectral clustering with landmark-based
representation", LSC): m landmarks (k-means centres of the features), each point
represented by its r nearest landmarks with Gaussian weights
z_ij = exp(-||x_i - u_j||^2 / (2 sigma^2)) (sigma the mean distance to those r; or
exp(-gamma ||x_i - u_j||^2) with affinity 'rbf'), rows normalised to sum 1. The affinity
Z D_Z^-1 Z^T (D_Z = diag(Z^T 1)) has unit row sums, and its leading eigenvectors are
U = Zh V Lambda^-1/2 with Zh = Z D_Z^-1/2 and (V, Lambda) the leading eigenpairs of the
(m, m) matrix Zh^T Zh. O(N r (r + k)) work beside an (m, m) eigendecomposition.

Affinities: 'knn', scikit-learn's `affinity='nearest_neighbors'`, A = (C + C^T) / 2 with
C_ij = 1 when j is among the n_neighbors nearest (Euclidean) of i, i itself included;
'rbf', A_ij = exp(-gamma ||x_i - x_j||^2).
"""

import jax
import jax.numpy as jnp
import numpy as np

from tlu.unsupervised import kmeans as kmeans_lib
from tlu.unsupervised import neighbours

HIGHEST = jax.lax.Precision.HIGHEST


def knn_affinity(features, n_neighbors):
  """(N, D) -> (N, N) float32 symmetric kNN affinity with values in {0, 0.5, 1}."""
  x = jnp.asarray(features, jnp.float32)
  n = x.shape[0]
  idx, _ = neighbours.knn(x, x, n_neighbors, metric='euclidean')
  c = jnp.zeros((n, n), jnp.float32).at[jnp.arange(n)[:, None], idx].set(1.0)
  return 0.5 * (c + c.T)


@jax.jit
def _sq_distances(x):
  sq = jnp.sum(x * x, axis=1)
  return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * jnp.dot(x, x.T, precision=HIGHEST), 0.0)


def rbf_affinity(features, gamma):
  """(N, D) -> (N, N) float32 exp(-gamma ||x_i - x_j||^2)."""
  return jnp.exp(-gamma * _sq_distances(jnp.asarray(features, jnp.float32)))


def _normalise_rows(u):
  return u / jnp.maximum(jnp.linalg.norm(u, axis=1, keepdims=True), 1e-12)


def spectral_embedding(affinity, k, normalize='rows'):
  """NJW embedding of a symmetric non-negative (N, N) affinity -> (N, k).

  normalize: 'rows' (NJW: unit rows), 'degree' (D^-1/2 U, scikit-learn's) or 'none' (U).
  """
  a = jnp.asarray(affinity, jnp.float32)
  return _dense_embedding(a, k, normalize)


@jax.jit
def _normalised(a):
  d = jnp.sum(a, axis=1)
  inv_sqrt = jnp.where(d > 0, jax.lax.rsqrt(jnp.maximum(d, 1e-30)), 0.0)
  return inv_sqrt[:, None] * a * inv_sqrt[None, :], inv_sqrt


def _dense_embedding(a, k, normalize):
  m, inv_sqrt = _normalised(a)
  _, vectors = jnp.linalg.eigh(0.5 * (m + m.T))
  u = vectors[:, ::-1][:, :k]   # eigh sorts ascending; the k largest of M
  return _finish(u, inv_sqrt, normalize)


def _finish(u, inv_sqrt, normalize):
  if normalize == 'rows':
    return _normalise_rows(u)
  if normalize == 'degree':
    return u * inv_sqrt[:, None]
  return u


def landmark_embedding(key, features, k, num_landmarks, landmark_neighbours=5, gamma=None,
                       normalize='rows'):
  """LSC's embedding (see the module docstring) of (N, D) features -> (N, k).

  num_landmarks m (k <= m <= N) k-means centres (10 Lloyd iterations from k-means++ with
  `key`); landmark_neighbours r <= m; gamma None: LSC's sigma, else exp(-gamma d^2).
  """
  x = jnp.asarray(features, jnp.float32)
  fit = kmeans_lib.kmeans(key, x, num_landmarks, max_iter=10)
  idx, dist = neighbours.knn(x, fit.centroids, landmark_neighbours, metric='euclidean')
  return _lsc(idx, dist, num_landmarks, k, gamma, normalize)


def _lsc(idx, dist, m, k, gamma, normalize):
  sq = jnp.square(dist)
  if gamma is None:
    sigma = jnp.maximum(jnp.mean(dist), 1e-12)
    w = jnp.exp(-sq / (2.0 * sigma ** 2))
  else:
    w = jnp.exp(-gamma * (sq - jnp.min(sq, axis=1, keepdims=True)))   # rows renormalised below
  z = w / jnp.sum(w, axis=1, keepdims=True)                           # (N, r), rows sum to 1
  col = jnp.zeros((m,), jnp.float32).at[idx].add(z)                   # Z^T 1
  zh = z * jax.lax.rsqrt(jnp.maximum(col[idx], 1e-30))
  gram = jnp.zeros((m, m), jnp.float32).at[idx[:, :, None], idx[:, None, :]].add(
      zh[:, :, None] * zh[:, None, :])                                 # Zh^T Zh
  values, vectors = jnp.linalg.eigh(0.5 * (gram + gram.T))
  values, vectors = values[::-1][:k], vectors[:, ::-1][:, :k]
  u = jnp.einsum('nr,nrk->nk', zh, vectors[idx], precision=HIGHEST)
  u = u * jax.lax.rsqrt(jnp.maximum(values, 1e-30))[None, :]
  # Degrees of Z D_Z^-1 Z^T are all 1, so 'degree' scaling is the identity here.
  return _finish(u, jnp.ones((u.shape[0],), jnp.float32), normalize)


def spectral_clustering(key, features, k, *, affinity='knn', n_neighbors=10, gamma=1.0,
                        landmarks=None, landmark_neighbours=5, max_dense=8192, n_init=10,
                        normalize='rows'):
  """Cluster labels of (N, D) features into k groups by spectral clustering.

  Args:
    key: PRNG key (landmark and k-means seeding).
    features: (N, D) numpy or jax array.
    k: number of clusters.
    affinity: 'knn' (n_neighbors) or 'rbf' (gamma); see the module docstring.
    landmarks: None: the dense path when N <= max_dense, else the landmark path with
      min(N, 1000) landmarks; an int m: the landmark path with m landmarks.
    landmark_neighbours: r of the landmark path (its Gaussian uses gamma with 'rbf').
    n_init: k-means++ restarts on the embedding (scikit-learn's 10).
    normalize: 'rows' (NJW), 'degree' (scikit-learn) or 'none'; see `spectral_embedding`.

  Returns:
    (N,) int32 numpy labels in [0, k).
  """
  if affinity not in ('knn', 'rbf'):
    raise ValueError(f"affinity must be 'knn' or 'rbf', got {affinity!r}")
  if normalize not in ('rows', 'degree', 'none'):
    raise ValueError(f"normalize must be 'rows', 'degree' or 'none', got {normalize!r}")
  x = jnp.asarray(features, jnp.float32)
  n = x.shape[0]
  if not 1 <= k <= n:
    raise ValueError(f'k={k} clusters need 1 <= k <= N={n}')
  k_embed, k_means = jax.random.split(key)
  if landmarks is None and n <= max_dense:
    a = knn_affinity(x, n_neighbors) if affinity == 'knn' else rbf_affinity(x, gamma)
    u = _dense_embedding(a, k, normalize)
  else:
    m = min(n, 1000) if landmarks is None else int(landmarks)
    if not k <= m <= n:
      raise ValueError(f'landmarks={m} must be between k={k} and N={n}')
    u = landmark_embedding(k_embed, x, k, m, min(landmark_neighbours, m),
                           None if affinity == 'knn' else gamma, normalize)
  fit = kmeans_lib.kmeans(k_means, u, k, n_init=n_init)
  return np.asarray(fit.labels, np.int32)
