"""One-class anomaly detection protocol on labelled features, scored by AUROC.

Why this protocol: it is the standard way (e.g. Ruff et al. 2018, Deep SVDD) to turn a
labelled dataset into anomaly-detection tasks: one class is "normal" and is all the
detector sees; at test time every other class is an anomaly. `scorers` are the three
training-free detectors of `tlu.unsupervised.anomaly`; `auroc_table` scores each on
several representations of the same rows.
"""

import functools

import jax
import numpy as np
from sklearn.metrics import roc_auc_score

from tlu import checks
from tlu.report import tables
from tlu.unsupervised import anomaly, kmeans as kmeans_lib

RANGES = {'knn_k': checks.POSITIVE_INT, 'kmeans_clusters': checks.POSITIVE_INT,
          'mahalanobis_shrinkage': checks.UNIT}   # the anomaly stage's own keys


def one_class_auroc(score_fn, feats_train, labels_train, feats_test, labels_test,
                    normal_class):
  """AUROC of `score_fn` with `normal_class` as the only normal class.

  Args:
    score_fn: (train_feats (n, d), test_feats (m, d)) -> (m,) scores, higher = more
      anomalous (e.g. `functools.partial(anomaly.knn_distance_score, k=5)`).
    feats_train, labels_train: (N, d) features and (N,) labels; only the rows of
      `normal_class` are passed to `score_fn`.
    feats_test, labels_test: (M, d) and (M,); rows of any other class are anomalies.
    normal_class: the label value treated as normal.

  Returns:
    float AUROC (anomaly = positive class).
  """
  labels_train = np.asarray(labels_train).reshape(-1)
  labels_test = np.asarray(labels_test).reshape(-1)
  normal = np.asarray(feats_train)[labels_train == normal_class]
  if normal.shape[0] == 0:
    raise ValueError(f'No training rows of normal class {normal_class!r}.')
  is_anomaly = labels_test != normal_class
  if is_anomaly.all() or not is_anomaly.any():
    raise ValueError('The test set needs both normal and anomalous rows.')
  scores = np.asarray(score_fn(normal, np.asarray(feats_test)), np.float64).reshape(-1)
  return float(roc_auc_score(is_anomaly, scores))


def one_class_auroc_per_class(score_fn, feats_train, labels_train, feats_test,
                              labels_test):
  """{normal_class: AUROC} for every class of labels_test, each in turn the normal one."""
  return {c.item(): one_class_auroc(score_fn, feats_train, labels_train, feats_test,
                                    labels_test, c)
          for c in np.unique(np.asarray(labels_test))}


def scorers(knn_k=5, mahalanobis_shrinkage=0.1, kmeans_clusters=5, seed=0):
  """{name: score_fn(normal_train (n, d), test (m, d)) -> (m,)}, higher = more anomalous.

  The k-th nearest normal row's distance, the Mahalanobis distance to the normal rows'
  Gaussian (shrunk towards a scaled identity) and the distance to the nearest of
  `kmeans_clusters` k-means centroids (k-means++, 5 restarts; fewer centroids when the
  normal class has fewer rows). ValueError for options out of range.
  """
  checks.check_values(dict(knn_k=knn_k, mahalanobis_shrinkage=mahalanobis_shrinkage,
                           kmeans_clusters=kmeans_clusters), RANGES)

  def kmeans_distance(train, test):
    k = min(kmeans_clusters, len(train))
    result = kmeans_lib.kmeans(jax.random.key(seed), train, k, n_init=5)
    return anomaly.kmeans_distance_score(result.centroids, test)

  return {
      f'{knn_k}-NN distance': functools.partial(anomaly.knn_distance_score, k=knn_k),
      'Mahalanobis': functools.partial(anomaly.mahalanobis_score,
                                       shrinkage=mahalanobis_shrinkage),
      f'k-means ({kmeans_clusters}) distance': kmeans_distance,
  }


def auroc_table(representations, score_fns, labels_train, labels_test):
  """Every scorer on every representation, each test class in turn normal.

  Args:
    representations: {name: (train (N, d), test (M, d))}, rows matching the labels.
    score_fns: {name: score_fn} (e.g. `scorers()`).
    labels_train, labels_test: (N,) and (M,) labels.

  Returns:
    (rows, summary): rows (representation, scorer, AUROC of each class of labels_test in
    sorted order, their mean); summary {'<representation>/<scorer>/mean_auroc': mean}.
  """
  rows, summary = [], {}
  for rep, (train, test) in representations.items():
    for score, fn in score_fns.items():
      per_class = one_class_auroc_per_class(fn, train, labels_train, test, labels_test)
      mean = float(np.mean(list(per_class.values())))
      rows.append((rep, score, *[per_class[c] for c in sorted(per_class)], mean))
      summary[f'{rep}/{score}/mean_auroc'] = mean
  return rows, summary


def report(rows, classes, dataset, backbone):
  """(markdown table, report.md) of `auroc_table`'s rows; classes: the sorted test labels,
  backbone: the `tlu.evaluate.run_features.Backbone` the features came from."""
  table = tables.key_value_table(rows, ('features', 'score', *[f'normal={c}' for c in classes],
                                        'mean'))
  return table, (
      f'# One-class anomaly detection on {dataset}\n\n'
      'Each class in turn is normal: the scorer sees only its training images; every test '
      'image of another class is an anomaly. AUROC (anomaly = positive). Features: backbone '
      f'of `{backbone.run_dir}` (step {backbone.step}), L2-normalised; that backbone may have '
      'seen images of every class (without labels) during its own training.\n\n'
      f'{table}\n')
