"""kNN on cosine similarity: brute-force numpy reference, tie-breaks, scikit-learn."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from tlu.evaluate import nearest_neighbours as knn


def brute_force_knn(train, labels, test, k, num_classes, weighting='uniform', temperature=0.07):
  """float64 argsort of cosine similarity; stable sort = lower index first on ties."""
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  test = test / np.linalg.norm(test, axis=1, keepdims=True)
  sims = test.astype(np.float64) @ train.astype(np.float64).T
  preds = []
  for row in sims:
    nn = np.argsort(-row, kind='stable')[:k]
    w = {'uniform': np.ones(k), 'distance': 1.0 / (1.0 - row[nn]),
         'temperature': np.exp(row[nn] / temperature)}[weighting]
    preds.append(np.argmax(np.bincount(labels[nn], weights=w, minlength=num_classes)))
  return np.array(preds)


@pytest.fixture(scope='module')
def gaussian():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(5, 16))
  y_train, y_test = rng.integers(0, 5, 300), rng.integers(0, 5, 101)
  train = centres[y_train] + rng.normal(size=(300, 16)) * 1.5
  test = centres[y_test] + rng.normal(size=(101, 16)) * 1.5
  return train.astype(np.float32), y_train, test.astype(np.float32), y_test


@pytest.mark.parametrize('weighting', ['uniform', 'distance', 'temperature'])
def test_matches_brute_force(gaussian, weighting):
  train, y_train, test, _ = gaussian
  expected = brute_force_knn(train, y_train, test, 10, 5, weighting)
  # 101 test rows in tiles of 16: several chunks and a padded last one.
  got = knn.knn_classify(train, y_train, test, 10, 5, weighting=weighting, chunk_size=16)
  np.testing.assert_array_equal(got, expected)


def test_chunk_size_does_not_change_votes(gaussian):
  train, y_train, test, _ = gaussian
  whole = knn.knn_votes(train, y_train, test, 7, 5, weighting='temperature')
  tiled = knn.knn_votes(train, y_train, test, 7, 5, weighting='temperature', chunk_size=5)
  np.testing.assert_allclose(tiled, whole, rtol=1e-6)


def test_ties_go_to_lower_index_then_smaller_label():
  train = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], np.float32)  # rows 0, 1 equally near
  labels = np.array([3, 1, 2])
  test = np.array([[1.0, 0.0]], np.float32)
  assert knn.knn_classify(train, labels, test, 1, 4)[0] == 3  # lower index is nearer
  assert knn.knn_classify(train, labels, test, 2, 4)[0] == 1  # one vote each: smaller label


def test_distance_weighting_lets_exact_matches_decide():
  train = np.array([[1.0, 0.0], [0.9, 0.1], [0.9, 0.12]], np.float32)
  labels = np.array([0, 1, 1])
  assert knn.knn_classify(train, labels, train[:1] * 5.0, 3, 2, weighting='distance')[0] == 0


@pytest.fixture(scope='module')
def digits():
  x, y = load_digits(return_X_y=True)
  return train_test_split(x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y)


@pytest.mark.parametrize('weighting', ['uniform', 'distance'])
def test_agrees_with_sklearn_on_digit_pixels(digits, weighting):
  x_train, x_test, y_train, y_test = digits
  clf = KNeighborsClassifier(n_neighbors=5, metric='cosine', algorithm='brute',
                             weights=weighting).fit(x_train, y_train)
  expected = clf.predict(x_test)
  got = knn.knn_classify(x_train, y_train, x_test, 5, 10, weighting=weighting)
  # Integer pixels make exact similarity ties possible, which sklearn may order differently.
  assert np.mean(got == expected) >= 0.99
  accuracy = knn.knn_accuracy(x_train, y_train, x_test, y_test, 5, 10, weighting=weighting)
  assert abs(accuracy - clf.score(x_test, y_test)) <= 0.01


def test_rejects_bad_k_and_weighting(gaussian):
  train, y_train, test, _ = gaussian
  with pytest.raises(ValueError, match='k must be'):
    knn.knn_classify(train, y_train, test, 0, 5)
  with pytest.raises(ValueError, match='weighting'):
    knn.knn_classify(train, y_train, test, 3, 5, weighting='gaussian')
