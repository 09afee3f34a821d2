"""One-class anomaly detection protocol on labelled features, scored by AUROC.

Why this protocol: it is the standard way (e.g. Ruff et al. 2018, Deep SVDD) to turn a
labelled dataset into anomaly-detection tasks: one class is "normal" and is all the
detector sees; at test time every other class is an anomaly.
"""

import numpy as np
from sklearn.metrics import roc_auc_score


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
