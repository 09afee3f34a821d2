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
  train_feats, train_labels, test_feats, test_labels = _arrays(train_feats, train_labels,
                                                             test_feats, test_labels)
  out = {'knn_accuracy': knn_score(train_feats, train_labels, test_feats, test_labels,
                                   num_classes, k=knn_k, weighting=knn_weighting,
                                   temperature=knn_temperature)}
  out['linear_probe_accuracy'] = probe_score(train_feats, train_labels, test_feats, test_labels,
                                             num_classes, probe_input=probe_input, l2=probe_l2,
                                             steps=probe_steps)
  if labels_per_class:
    out.update(few_label_scores(train_feats, train_labels, test_feats, test_labels, num_classes,
                                labels_per_class=labels_per_class, probe_input=probe_input,
                                l2=few_shot_l2, trials=few_shot_trials, seed=few_shot_seed,
                                steps=probe_steps))
  out.update(kmeans_scores(train_feats, train_labels, test_feats, test_labels,
                           num_clusters or num_classes, n_init=kmeans_n_init, rows=kmeans_rows,
                           seed=kmeans_seed))
  return out


def _arrays(train_feats, train_labels, test_feats, test_labels):
  return (np.asarray(train_feats, np.float32), np.asarray(train_labels).reshape(-1),
          np.asarray(test_feats, np.float32), np.asarray(test_labels).reshape(-1))


def _probe_inputs(train_feats, test_feats, probe_input):
  if probe_input not in PROBE_INPUTS:
    raise ValueError(f'probe_input must be one of {PROBE_INPUTS}, got {probe_input!r}')
  if probe_input == 'standardized':
    return train_feats, test_feats, True
  return l2_normalize(train_feats), l2_normalize(test_feats), False


def knn_score(train_feats, train_labels, test_feats, test_labels, num_classes, *, k=20,
              weighting='temperature', temperature=0.07):
  """kNN test accuracy (cosine neighbours; `tlu.evaluate.knn.knn_accuracy`)."""
  return knn.knn_accuracy(train_feats, train_labels, test_feats, test_labels, k, num_classes,
                          weighting=weighting, temperature=temperature)


def probe_score(train_feats, train_labels, test_feats, test_labels, num_classes, *,
                probe_input='l2', l2=1e-4, steps=500):
  """Test accuracy of softmax regression on all training rows."""
  x_train, x_test, standardize = _probe_inputs(train_feats, test_feats, probe_input)
  return linear_probe.linear_probe(x_train, train_labels, x_test, test_labels, num_classes,
                                   l2=l2, steps=steps, standardize=standardize)['accuracy']


def few_label_scores(train_feats, train_labels, test_feats, test_labels, num_classes, *,
                     labels_per_class=10, probe_input='l2', l2=1e-3, trials=5, seed=0, steps=500):
  """{'few_shot_probe_accuracy', '..._std'}: the probe on `labels_per_class` seeded rows per
  class, mean and std over `trials` subsets (seeds seed + i)."""
  x_train, x_test, standardize = _probe_inputs(train_feats, test_feats, probe_input)
  train_labels = np.asarray(train_labels).reshape(-1)
  accs = []
  for trial in range(trials):
    idx = few_labels(train_labels, labels_per_class, seed + trial)
    accs.append(linear_probe.linear_probe(
        x_train[idx], train_labels[idx], x_test, test_labels, num_classes,
        l2=l2, steps=steps, standardize=standardize)['accuracy'])
  return {'few_shot_probe_accuracy': float(np.mean(accs)),
          'few_shot_probe_accuracy_std': float(np.std(accs))}


def kmeans_scores(train_feats, train_labels, test_feats, test_labels, num_clusters, *,
                  n_init=10, rows='all', seed=0):
  """{'kmeans_acc', 'kmeans_nmi', 'kmeans_ari'} of k-means on L2-normalised features
  (rows: 'all' = train and test together, 'test' = the test rows)."""
  if rows not in KMEANS_ROWS:
    raise ValueError(f'kmeans_rows must be one of {KMEANS_ROWS}, got {rows!r}')
  if rows == 'all':
    feats = np.concatenate([train_feats, test_feats])
    labels = np.concatenate([np.asarray(train_labels).reshape(-1),
                             np.asarray(test_labels).reshape(-1)])
  else:
    feats, labels = test_feats, np.asarray(test_labels).reshape(-1)
  result = kmeans_lib.kmeans(jax.random.key(seed), l2_normalize(feats), num_clusters,
                             n_init=n_init)
  scores = clustering.clustering_metrics(labels, np.asarray(result.labels))
  return {f'kmeans_{k}': v for k, v in scores.items()}
