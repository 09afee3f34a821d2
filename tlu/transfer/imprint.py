"""Weight imprinting (Qi, Brown & Lowe, CVPR 2018): a new head set from the labelled examples' features.

With one label per class a freshly initialised head starts from noise and can fit
the handful of examples in many directions; an imprinted head starts at the
normalised class means, so before any step it is the cosine nearest-class-mean
classifier, and training refines it. It is meant for a head that sees
L2-normalised features (`tlu.models.heads.classifier(k, l2_scale)`, the supervised
method's `head_l2_scale`): logits = scale * cos(feature, mean).
"""

import numpy as np

from tlu.evaluate.features import extract_features
from tlu.evaluate.features import l2_normalize


def imprinted_head(features, labels, num_classes):
  """{'kernel': (F, K), 'bias': (K,)} whose column k is the unit mean of class k's unit features.

  Args:
    features: (N, F) features of the labelled examples.
    labels: (N,) ints in [0, num_classes).
    num_classes: K; every class needs at least one example.
  """
  labels = np.asarray(labels)
  missing = sorted(set(range(num_classes)) - set(labels.tolist()))
  if missing:
    raise ValueError(f'cannot imprint classes {missing}: no labelled example')
  unit = l2_normalize(features)
  means = l2_normalize(np.stack([unit[labels == k].mean(0) for k in range(num_classes)]))
  return {'kernel': means.T, 'bias': np.zeros(num_classes, np.float32)}


def imprint(model, variables, labelled, batch_size, mesh, head='head'):
  """`variables` with `head` imprinted from the features `variables` give `labelled`.

  Args:
    model: the `tlu.models.Model` of `variables`; its `head` is a Dense of K outputs.
    variables: {'params', 'batch_stats'}; features are computed in inference mode.
    labelled: a random-access source of {'image', 'label'} with every class in [0, K).
    batch_size, mesh: of the feature extraction (`tlu.evaluate.features.extract_features`).
  """
  features, labels = extract_features(model, variables, labelled, batch_size, mesh)
  num_classes = np.shape(variables['params'][head]['kernel'])[-1]
  return {**variables, 'params': {**variables['params'],
                                  head: imprinted_head(features, labels, num_classes)}}
