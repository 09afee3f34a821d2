"""Clustering metrics on hand-derived cases."""

import ml_collections
import numpy as np
import pytest

from tlu.evaluate import clustering


def test_permuted_labelling_is_perfect():
  y = np.array([0, 0, 1, 1, 1, 2, 2, 3])
  relabel = np.array([2, 3, 0, 1])  # cluster ids are arbitrary names
  m = clustering.clustering_metrics(y, relabel[y])
  assert m == pytest.approx({'acc': 1.0, 'nmi': 1.0, 'ari': 1.0})


def test_accuracy_hand_derived():
  y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
  y_pred = [2, 2, 2, 1, 1, 1, 0, 0, 0, 0]
  # Contingency (pred -> true): 2->0: 3; 1->0: 1, 1->1: 2; 0->1: 1, 0->2: 3.
  # Best one-to-one matching 2->0, 1->1, 0->2 covers 3 + 2 + 3 = 8 of 10 points
  # (a greedy 'majority class' map would also give 8 here, but 1->0 instead of 1->1
  # would give only 7).
  assert clustering.cluster_accuracy(y_true, y_pred) == pytest.approx(0.8)


def test_accuracy_with_more_clusters_than_classes():
  # Clusters 'a' and 'b' both hold class 0; only one of them may be matched to it.
  assert clustering.cluster_accuracy([0, 0, 1, 1], ['a', 'b', 'c', 'c']) == 0.75


def test_accuracy_needs_one_to_one_matching():
  # Majority voting would map both clusters to class 0 (accuracy 5/6); the
  # one-to-one matching must send one of them to class 1.
  y_true = [0, 0, 0, 0, 0, 1]
  y_pred = [0, 0, 0, 1, 1, 1]
  assert clustering.cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 6)


def _nmi_by_definition(y, c):
  """I(Y; C) / ((H(Y) + H(C)) / 2) in nats, from the contingency table (numpy, not the
  scikit-learn function tlu calls)."""
  y, c = np.unique(y, return_inverse=True)[1], np.unique(c, return_inverse=True)[1]
  joint = np.zeros((y.max() + 1, c.max() + 1))
  np.add.at(joint, (y, c), 1.0)
  joint /= joint.sum()
  py, pc = joint.sum(1), joint.sum(0)
  nz = joint > 0
  mi = np.sum(joint[nz] * np.log(joint[nz] / np.outer(py, pc)[nz]))
  entropy = lambda p: -np.sum(p[p > 0] * np.log(p[p > 0]))
  return mi / ((entropy(py) + entropy(pc)) / 2)


def test_nmi_at_intermediate_values_matches_its_definition():
  # Hand-derived: y = (0, 0, 1, 1), c = (0, 0, 0, 1): H(Y) = ln 2, H(C) = H(3/4, 1/4),
  # I = H(C) - H(C | Y) = H(C) - (1/2) ln 2.
  h_c = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
  hand = (h_c - 0.5 * np.log(2)) / ((np.log(2) + h_c) / 2)
  assert clustering.nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(hand, rel=1e-12)
  assert 0.2 < hand < 0.4
  rng = np.random.default_rng(0)
  for n, k_true, k_pred in [(50, 3, 3), (200, 5, 8), (97, 10, 4)]:
    y = rng.integers(0, k_true, n)
    c = np.where(rng.random(n) < 0.6, y, rng.integers(0, k_pred, n))  # partly informative
    want = _nmi_by_definition(y, c)
    assert 0.05 < want < 0.95
    assert clustering.nmi(y, c) == pytest.approx(want, rel=1e-9)


def test_nmi_and_ari_of_uninformative_clustering():
  y = [0, 0, 1, 1, 2, 2]
  m = clustering.clustering_metrics(y, [5] * 6)
  assert m['nmi'] == pytest.approx(0.0)
  assert m['ari'] == pytest.approx(0.0)
  assert m['acc'] == pytest.approx(2 / 6)


def test_ari_hand_derived():
  # Hubert & Arabie: contingency [[2, 0], [1, 1]] -> sum C(n_ij, 2) = 1,
  # rows C(2,2) + C(2,2) = 2, cols C(3,2) + C(1,2) = 3, C(4,2) = 6.
  # ARI = (1 - 2*3/6) / (0.5*(2+3) - 2*3/6) = 0 / 1.5 = 0.
  assert clustering.ari([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.0)
  # [[2, 0], [0, 2]] relabelled: ARI = 1.
  assert clustering.ari([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)


def test_kmeans_comparison_names_and_scores_each_representation():
  from tlu.evaluate import kmeans_comparison  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  labels = np.repeat([0, 1, 2], 20)
  pixels = (np.eye(3)[labels] + 0.01 * rng.normal(size=(60, 3))).astype(np.float32)
  noise = rng.normal(size=(60, 4)).astype(np.float32)  # features that know nothing
  inputs = kmeans_comparison.representations(pixels, noise, pca_components=2)
  assert [(short, name, x.shape) for short, (name, x) in inputs.items()] == [
      ('raw', 'raw pixels', (60, 3)), ('pca', 'PCA-2 of pixels', (60, 2)),
      ('contrastive', 'contrastive features (L2-normalised)', (60, 4))]
  np.testing.assert_allclose(np.linalg.norm(inputs[kmeans_comparison.FEATURES][1], axis=1), 1.0,
                             rtol=1e-6)
  config = ml_collections.ConfigDict(dict(n_init=2, max_iter=50, seed=0))
  summary, table = kmeans_comparison.compare(inputs, labels, 3, config, mesh=None)
  assert list(summary) == [f'{r}/{m}' for r in ('raw', 'pca', 'contrastive')
                           for m in ('acc', 'nmi', 'ari')]
  assert summary['raw/acc'] == 1.0 and summary['pca/acc'] == 1.0
  assert summary['contrastive/acc'] < 0.8
  assert '| raw pixels | 3 | kmeans | 1.0000 | 1.0000 | 1.0000 |' in table
  assert '| PCA-2 of pixels | 2 |' in table


@pytest.mark.parametrize('option,value', [('rows', 'train'), ('num_clusters', -1),
                                          ('n_init', 0), ('max_iter', 0),
                                          ('pca_components', 0), ('pca_components', 65)])
def test_kmeans_comparison_refuses_options_out_of_range(option, value):
  from tlu.evaluate import kmeans_comparison  # pylint: disable=import-outside-toplevel
  options = dict(rows='all', num_clusters=0, n_init=1, max_iter=1, pca_components=32, seed=0)
  kmeans_comparison.check(ml_collections.ConfigDict(options), pixels=64)
  with pytest.raises(ValueError, match=option):
    kmeans_comparison.check(ml_collections.ConfigDict({**options, option: value}), pixels=64)
