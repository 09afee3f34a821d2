"""Weight imprinting (Qi, Brown & Lowe, CVPR 2018): a new head set from the labelled examples' features.

With one label per class a freshly initialised head starts from noise and can fit
the handful of examples in many directions; an imprinted head starts at the
normalised class means, so before any step it is the cosine nearest-class-mean
classifier, and training refines it. It is meant for a head that sees
L2-normalised features (`Model.head_l2_scale`): logits = scale * cos(feature, mean).
"""

import numpy as np


def imprinted_head(features, labels, num_classes):
  """{'kernel': (F, K), 'bias': (K,)} whose column k is the unit mean of class k's unit features.

  Args:
    features: (N, F) features of the labelled examples.
    labels: (N,) ints in [0, num_classes).
    num_classes: K; every class needs at least one example.
  """
  features = np.asarray(features, np.float64)
  labels = np.asarray(labels)
  missing = sorted(set(range(num_classes)) - set(labels.tolist()))
  if missing:
    raise ValueError(f'cannot imprint classes {missing}: no labelled example')
  unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  means = np.stack([unit[labels == k].mean(0) for k in range(num_classes)])
  means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
  return {'kernel': means.T.astype(np.float32), 'bias': np.zeros(num_classes, np.float32)}
