"""Anomaly scores: brute-force numpy/scipy references and a planted-outlier AUROC."""

import functools

import jax
import numpy as np
import pytest
from scipy.spatial.distance import cdist, mahalanobis

from tlu.evaluate import anomaly_eval
from tlu.unsupervised import anomaly
from tlu.unsupervised import kmeans as kmeans_lib


@pytest.fixture(scope='module')
def planted():
  """Class c: a correlated Gaussian around 10 * e_c (apart in angle and in distance)."""
  rng = np.random.default_rng(0)
  mix = rng.normal(size=(8, 8)) * 0.5 + np.eye(8)

  def sample(n, c):
    return (rng.normal(size=(n, 8)) @ mix + 10.0 * np.eye(8)[c]).astype(np.float32)

  train = np.concatenate([sample(300, 0), sample(100, 1), sample(100, 2)])
  y_train = np.repeat([0, 1, 2], [300, 100, 100])
  test = np.concatenate([sample(200, 0), sample(15, 1), sample(15, 2)])
  y_test = np.repeat([0, 1, 2], [200, 15, 15])
  return train, y_train, test, y_test


def _kmeans_score(train, test):
  centroids = kmeans_lib.kmeans(jax.random.key(0), train, 4, n_init=2).centroids
  return anomaly.kmeans_distance_score(centroids, test)


@pytest.mark.parametrize('score_fn', [
    functools.partial(anomaly.knn_distance_score, k=5),
    functools.partial(anomaly.knn_distance_score, k=5, metric='cosine'),
    anomaly.mahalanobis_score,
    _kmeans_score,
], ids=['knn', 'knn_cosine', 'mahalanobis', 'kmeans'])
def test_planted_outliers_auroc_near_one(planted, score_fn):
  auroc = anomaly_eval.one_class_auroc(score_fn, *planted, normal_class=0)
  assert auroc > 0.97


def test_one_class_auroc_counts_ranked_pairs():
  feats_train = np.zeros((5, 2), np.float32)
  labels_train = np.array([3, 3, 7, 3, 7])
  scores = np.array([0.1, 0.35, 0.4, 0.8])
  labels_test = np.array([3, 7, 3, 7])  # normals score 0.1, 0.4; anomalies 0.35, 0.8

  def score_fn(train, test):
    assert train.shape == (3, 2)  # only the normal class is seen
    return scores

  # Pairs (anomaly, normal) ranked right: (0.35, 0.1), (0.8, 0.1), (0.8, 0.4) of 4.
  auroc = anomaly_eval.one_class_auroc(score_fn, feats_train, labels_train,
                                       np.zeros((4, 2)), labels_test, normal_class=3)
  assert auroc == pytest.approx(0.75)


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_knn_distance_equals_brute_force(planted, metric):
  train, _, test, _ = planted
  got = np.asarray(anomaly.knn_distance_score(train, test, 3, metric=metric,
                                              chunk_size=64))
  dist = cdist(test.astype(np.float64), train.astype(np.float64), metric=metric)
  np.testing.assert_allclose(got, np.sort(dist, axis=1)[:, 2], rtol=1e-3, atol=1e-4)


def test_mahalanobis_single_gaussian_equals_scipy(planted):
  train, _, test, _ = planted
  got = np.asarray(anomaly.mahalanobis_score(train, test, shrinkage=0.0, ridge=0.0))
  x = train.astype(np.float64)
  inv = np.linalg.inv(np.cov(x, rowvar=False, bias=True))
  want = [mahalanobis(t, x.mean(0), inv) ** 2 for t in test.astype(np.float64)]
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_mahalanobis_class_conditional_equals_numpy(planted):
  train, y_train, test, _ = planted
  shrink = 0.2
  got = np.asarray(anomaly.mahalanobis_score(train, test, y_train, shrinkage=shrink,
                                             ridge=0.0))
  x = train.astype(np.float64)
  means = np.stack([x[y_train == c].mean(0) for c in range(3)])
  resid = x - means[y_train]
  cov = resid.T @ resid / len(x)
  cov = (1 - shrink) * cov + shrink * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
  inv = np.linalg.inv(cov)
  want = np.array([[mahalanobis(t, m, inv) ** 2 for m in means]
                   for t in test.astype(np.float64)]).min(1)
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_kmeans_distance_is_distance_to_nearest_centroid(planted):
  _, _, test, _ = planted
  centroids = test[:7] + 0.5
  got = np.asarray(anomaly.kmeans_distance_score(centroids, test))
  np.testing.assert_allclose(got, cdist(test, centroids).min(1), rtol=1e-4, atol=1e-4)


def test_auroc_table_has_one_row_per_representation_and_scorer():
  labels_train = np.array([0, 0, 1, 1])
  labels_test = np.array([0, 1, 1, 0])
  # A scorer that ranks every anomaly above every normal row, and one that ranks them the
  # other way round: AUROC 1 and 0 for each normal class.
  right = lambda train, test: np.abs(test[:, 0] - train[:, 0].mean())
  wrong = lambda train, test: -right(train, test)
  train = labels_train[:, None].astype(np.float32)   # each row's feature is its class
  test = labels_test[:, None].astype(np.float32)
  reps = {'a': (train, test), 'b': (train, test)}
  rows, summary = anomaly_eval.auroc_table(reps, {'right': right, 'wrong': wrong},
                                           labels_train, labels_test)
  assert rows == [('a', 'right', 1.0, 1.0, 1.0), ('a', 'wrong', 0.0, 0.0, 0.0),
                  ('b', 'right', 1.0, 1.0, 1.0), ('b', 'wrong', 0.0, 0.0, 0.0)]
  assert summary == {'a/right/mean_auroc': 1.0, 'a/wrong/mean_auroc': 0.0,
                     'b/right/mean_auroc': 1.0, 'b/wrong/mean_auroc': 0.0}


def test_scorers_are_named_by_their_options_and_score_planted_outliers(planted):
  fns = anomaly_eval.scorers(knn_k=3, mahalanobis_shrinkage=0.1, kmeans_clusters=4)
  assert list(fns) == ['3-NN distance', 'Mahalanobis', 'k-means (4) distance']
  for fn in fns.values():
    assert anomaly_eval.one_class_auroc(fn, *planted, normal_class=0) > 0.97


@pytest.mark.parametrize('kwargs', [dict(knn_k=0), dict(kmeans_clusters=0),
                                    dict(mahalanobis_shrinkage=-0.1),
                                    dict(mahalanobis_shrinkage=1.5)])
def test_scorers_refuse_options_out_of_range(kwargs):
  with pytest.raises(ValueError, match=next(iter(kwargs))):
    anomaly_eval.scorers(**kwargs)
