"""How good a frozen representation is, from its features: kNN, linear probes, k-means.

Why one function: every stage that learns a representation without labels
(contrastive pretraining, clustering, the pipeline) is judged by the same
numbers, computed the same way, so they are comparable across stages and with
the raw-pixel baseline (pass flattened pixels as the "features"). Labels are
used only here, for scoring; the representation never saw them.

The protocol (standard in SimCLR / SCAN-style papers):
- kNN: each test row is classified by its k most cosine-similar training rows.
- Linear probe: softmax regression on all training features, scored on test;
  by default on L2-normalised features as they are (not standardised: the
  per-feature statistics of 100 labelled rows amplify noisy features).
- Few-shot probe: the same probe fitted on `labels_per_class` seeded labelled
  examples per class of the training split; the mean (and std) test accuracy
  over `few_shot_trials` such subsets.
- k-means: k clusters of the L2-normalised features (all rows, or the test rows),
  scored against the labels by Hungarian accuracy, NMI and ARI.
"""

import jax
import numpy as np

from tlu.data.subsets import few_labels
from tlu.evaluate import clustering, knn, linear_probe
from tlu.unsupervised import kmeans as kmeans_lib

PROBE_INPUTS = ('l2', 'standardized')
KMEANS_ROWS = ('all', 'test')


def l2_normalize(x):
  """Rows of x (N, F) scaled to unit L2 norm (zero rows stay zero)."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def representation_metrics(train_feats, train_labels, test_feats, test_labels, num_classes, *,
                           knn_k=20, knn_weighting='temperature', knn_temperature=0.07,
                           probe_input='l2', probe_l2=1e-4, labels_per_class=10,
                           few_shot_l2=1e-3, few_shot_trials=5, few_shot_seed=0,
                           num_clusters=None, kmeans_n_init=10, kmeans_rows='all', kmeans_seed=0,
                           probe_steps=500):
  """kNN, linear-probe, few-shot-probe and k-means scores of one representation.

  Args:
    train_feats: (N, F) features of the training split.
    train_labels: (N,) int labels of the training split (for kNN and the probes).
    test_feats: (M, F) features of the test split.
    test_labels: (M,) int labels of the test split.
    num_classes: number of classes C.
    knn_k, knn_weighting, knn_temperature: see `tlu.evaluate.knn.knn_accuracy`.
    probe_input: 'l2' (L2-normalised features, not standardised) or 'standardized'
      (raw features standardised with the probe's training rows).
    probe_l2: L2 penalty of the probe on all training rows (`linear_probe`;
      1e-4 is scikit-learn's C ~ 7 at 1,437 rows).
    labels_per_class: labelled examples per class of the few-shot probe (0: skip).
    few_shot_l2: L2 penalty of the few-shot probe (1e-3: C = 10 at 100 rows).
    few_shot_trials: number of seeded subsets averaged (seeds few_shot_seed + i).
    num_clusters: k of k-means (default: num_classes).
    kmeans_n_init: k-means++ restarts; the lowest-inertia run is kept.
    kmeans_rows: 'all' clusters train and test rows together, 'test' the test rows.
    kmeans_seed: seed of the k-means++ initialisation.
    probe_steps: maximum L-BFGS iterations of each probe.

  Returns:
    A flat dict of floats: knn_accuracy, linear_probe_accuracy,
    few_shot_probe_accuracy, few_shot_probe_accuracy_std (if labels_per_class),
    kmeans_acc, kmeans_nmi, kmeans_ari.
  """
  train_feats = np.asarray(train_feats, np.float32)
  test_feats = np.asarray(test_feats, np.float32)
  train_labels = np.asarray(train_labels).reshape(-1)
  test_labels = np.asarray(test_labels).reshape(-1)
  if probe_input not in PROBE_INPUTS:
    raise ValueError(f'probe_input must be one of {PROBE_INPUTS}, got {probe_input!r}')
  if kmeans_rows not in KMEANS_ROWS:
    raise ValueError(f'kmeans_rows must be one of {KMEANS_ROWS}, got {kmeans_rows!r}')
  standardize = probe_input == 'standardized'
  probe_train, probe_test = ((train_feats, test_feats) if standardize else
                             (l2_normalize(train_feats), l2_normalize(test_feats)))
  out = {'knn_accuracy': knn.knn_accuracy(
      train_feats, train_labels, test_feats, test_labels, knn_k, num_classes,
      weighting=knn_weighting, temperature=knn_temperature)}
  out['linear_probe_accuracy'] = linear_probe.linear_probe(
      probe_train, train_labels, probe_test, test_labels, num_classes, l2=probe_l2,
      steps=probe_steps, standardize=standardize)['accuracy']
  if labels_per_class:
    accs = []
    for trial in range(few_shot_trials):
      idx = few_labels(train_labels, labels_per_class, few_shot_seed + trial)
      accs.append(linear_probe.linear_probe(
          probe_train[idx], train_labels[idx], probe_test, test_labels, num_classes,
          l2=few_shot_l2, steps=probe_steps, standardize=standardize)['accuracy'])
    out['few_shot_probe_accuracy'] = float(np.mean(accs))
    out['few_shot_probe_accuracy_std'] = float(np.std(accs))
  if kmeans_rows == 'all':
    feats = np.concatenate([train_feats, test_feats])
    labels = np.concatenate([train_labels, test_labels])
  else:
    feats, labels = test_feats, test_labels
  result = kmeans_lib.kmeans(jax.random.key(kmeans_seed), l2_normalize(feats),
                             num_clusters or num_classes, n_init=kmeans_n_init)
  scores = clustering.clustering_metrics(labels, np.asarray(result.labels))
  out.update({f'kmeans_{k}': v for k, v in scores.items()})
  return out
