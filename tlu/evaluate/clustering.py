"""Clustering quality against ground-truth labels: Hungarian accuracy, NMI, ARI.

Why all three: accuracy under the best one-to-one cluster->class matching is the
number deep-clustering papers report; NMI and ARI do not need a matching and are
comparable across different numbers of clusters.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics


def _as_labels(y):
  return np.asarray(y).reshape(-1)


def cluster_accuracy(y_true, y_pred):
  """Fraction of points whose cluster maps to their class under the best matching.

  The matching is one-to-one between clusters and classes and maximises the number of
  agreeing points (Hungarian algorithm on the contingency table). With more clusters
  than classes the unmatched clusters count as wrong.

  Args:
    y_true: (n,) class labels (any hashable values).
    y_pred: (n,) cluster ids (any hashable values).

  Returns:
    float in [0, 1].
  """
  y_true, y_pred = _as_labels(y_true), _as_labels(y_pred)
  if y_true.shape != y_pred.shape:
    raise ValueError(f'y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape.')
  if y_true.size == 0:
    raise ValueError('cluster_accuracy needs at least one point.')
  _, t = np.unique(y_true, return_inverse=True)
  _, p = np.unique(y_pred, return_inverse=True)
  table = np.zeros((p.max() + 1, t.max() + 1), np.int64)
  np.add.at(table, (p.reshape(-1), t.reshape(-1)), 1)
  rows, cols = linear_sum_assignment(table, maximize=True)
  return float(table[rows, cols].sum() / y_true.size)


def nmi(y_true, y_pred):
  """Normalized mutual information (arithmetic normalisation, scikit-learn's default)."""
  return float(metrics.normalized_mutual_info_score(_as_labels(y_true), _as_labels(y_pred)))


def ari(y_true, y_pred):
  """Adjusted Rand index."""
  return float(metrics.adjusted_rand_score(_as_labels(y_true), _as_labels(y_pred)))


def clustering_metrics(y_true, y_pred):
  """{'acc', 'nmi', 'ari'} of a clustering y_pred (n,) against labels y_true (n,)."""
  return {'acc': cluster_accuracy(y_true, y_pred), 'nmi': nmi(y_true, y_pred),
          'ari': ari(y_true, y_pred)}
