"""Spectral clustering and neighbour mining against scikit-learn on the same inputs."""

import functools

import jax
import numpy as np
import pytest
from sklearn.cluster import SpectralClustering
from sklearn.datasets import load_digits, make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors, kneighbors_graph

from tlu.evaluate.clustering import cluster_accuracy
from tlu.unsupervised import neighbours, spectral


def sklearn_labels(affinity, k):
  return SpectralClustering(k, affinity='precomputed', random_state=0).fit_predict(
      np.asarray(affinity, np.float64))


def test_knn_affinity_is_sklearns_nearest_neighbors_affinity():
  x, _ = make_blobs(120, centers=3, random_state=1)
  connectivity = kneighbors_graph(x, n_neighbors=7, include_self=True).toarray()
  np.testing.assert_array_equal(np.asarray(spectral.knn_affinity(x, 7)),
                                0.5 * (connectivity + connectivity.T))


def test_rbf_affinity_is_the_gaussian_kernel():
  x = np.random.default_rng(0).normal(size=(30, 4))
  expected = np.exp(-0.3 * ((x[:, None] - x[None]) ** 2).sum(-1))
  np.testing.assert_allclose(np.asarray(spectral.rbf_affinity(x, 0.3)), expected,
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('data,affinity,k', [('moons', 'knn', 2), ('blobs', 'rbf', 4)])
def test_dense_path_agrees_with_sklearn_on_separable_data(data, affinity, k):
  if data == 'moons':
    x, y = make_moons(300, noise=0.05, random_state=0)
    a = spectral.knn_affinity(x, 10)
  else:
    x, y = make_blobs(300, centers=4, cluster_std=0.6, random_state=0)
    a = spectral.rbf_affinity(x, 1.0)
  ours = spectral.spectral_clustering(jax.random.key(0), x, k, affinity=affinity,
                                      n_neighbors=10, gamma=1.0)
  assert adjusted_rand_score(sklearn_labels(a, k), ours) >= 0.99
  assert adjusted_rand_score(y, ours) >= 0.99


def test_landmark_path_recovers_separable_clusters():
  x, y = make_moons(400, noise=0.05, random_state=0)
  ours = spectral.spectral_clustering(jax.random.key(0), x, 2, landmarks=60,
                                      landmark_neighbours=3)
  assert adjusted_rand_score(y, ours) >= 0.99
  xb, _ = make_blobs(400, centers=4, cluster_std=0.6, random_state=0)
  ours = spectral.spectral_clustering(jax.random.key(0), xb, 4, landmarks=60)
  assert adjusted_rand_score(sklearn_labels(spectral.rbf_affinity(xb, 1.0), 4), ours) >= 0.99


def test_embedding_spans_sklearns_eigenvectors():
  """Without normalisation the embedding is the top eigenspace of D^-1/2 A D^-1/2."""
  x, _ = make_blobs(80, centers=3, random_state=2)
  a = np.asarray(spectral.rbf_affinity(x, 0.5), np.float64)
  d = a.sum(1)
  m = a / np.sqrt(d[:, None] * d[None, :])
  top = np.linalg.eigh(m)[1][:, -3:]
  u = np.asarray(spectral.spectral_embedding(a, 3, normalize='none'), np.float64)
  # Both orthonormal: the cosines of the principal angles between the subspaces are 1.
  np.testing.assert_allclose(np.linalg.svd(top.T @ u)[1], 1.0, atol=1e-3)


@functools.lru_cache(maxsize=None)
def digits(n):
  data = load_digits()
  return data.data[:n] / 16.0, data.target[:n]


def _digits_accuracies(n):
  x, y = digits(n)
  a = spectral.knn_affinity(x, 10)
  theirs = cluster_accuracy(y, sklearn_labels(a, 10))
  same = cluster_accuracy(y, spectral.spectral_clustering(
      jax.random.key(0), x, 10, n_neighbors=10, normalize='degree'))
  njw = cluster_accuracy(y, spectral.spectral_clustering(
      jax.random.key(0), x, 10, n_neighbors=10))
  return theirs, same, njw


def test_digits_accuracy_within_two_points_of_sklearn_subset():
  """The first 600 of scikit-learn's digits (tlu_digits' images), pixels, kNN affinity."""
  theirs, same, njw = _digits_accuracies(600)
  assert abs(same - theirs) <= 0.02
  assert njw >= theirs - 0.02


@pytest.mark.slow
def test_digits_accuracy_within_two_points_of_sklearn():
  theirs, same, njw = _digits_accuracies(1797)
  assert abs(same - theirs) <= 0.02
  assert njw >= theirs - 0.02


@pytest.mark.parametrize('metric', ('cosine', 'euclidean'))
def test_blocked_knn_matches_sklearn_nearest_neighbors(metric):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(203, 12)).astype(np.float32)
  idx, scores = neighbours.knn(x, x, 6, metric=metric, block_size=64)
  nn = NearestNeighbors(n_neighbors=6, metric=metric).fit(x)
  dist, expected = nn.kneighbors(x)
  np.testing.assert_array_equal(np.asarray(idx), expected)
  expected_scores = 1.0 - dist if metric == 'cosine' else dist
  np.testing.assert_allclose(np.asarray(scores), expected_scores, atol=1e-4)
  assert np.all(np.asarray(idx)[:, 0] == np.arange(203))   # each point finds itself first


def test_neighbour_agreement_counts_same_label_neighbours_without_the_anchor():
  indices = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0], [3, 2, 1]])
  labels = np.array([0, 0, 1, 1])
  # pairs: (0,1) y (0,2) n (1,0) y (1,3) n (2,3) y (2,0) n (3,2) y (3,1) n
  assert float(neighbours.neighbour_agreement(indices, labels)) == 0.5
