"""k-means of the same rows under several representations, scored against their labels.

SCAN's "pretext + k-means" protocol (Van Gansbeke et al. 2020): the L2-normalised
features of a learned backbone, clustered with k-means++ restarts, against the
baselines a representation must beat, raw pixels and their PCA. Scores are Hungarian
accuracy, NMI and ARI (`tlu.evaluate.clustering`).
"""

import dataclasses

import jax
import numpy as np

from tlu.evaluate import clustering
from tlu.evaluate.representation import l2_normalize
from tlu.report import tables
from tlu.unsupervised import kmeans as kmeans_lib, pca as pca_lib

ROWS = ('all', 'test')
FEATURES = 'contrastive features (L2-normalised)'


def check(*, rows, num_clusters, n_init, max_iter, pca_components, pixels):
  """ValueError naming the option out of range; `pixels`: values per image (H*W*C)."""
  if rows not in ROWS:
    raise ValueError(f"rows must be 'all' or 'test', got {rows!r}")
  for name, value, low in (('num_clusters', num_clusters, 0), ('n_init', n_init, 1),
                           ('max_iter', max_iter, 1)):
    if value < low:
      raise ValueError(f'{name}={value} must be >= {low}')
  if not 0 < pca_components <= pixels:
    raise ValueError(f'pca_components={pca_components} must be in 1..{pixels} '
                     '(the number of pixel values)')


def representations(pixels, features, pca_components):
  """{name: (N, d)} of the same N rows: raw pixels (N, P) in [0, 1], their PCA to
  `pca_components` dimensions, and the backbone features (N, F) L2-normalised."""
  reduced = np.asarray(pca_lib.pca_transform(pca_lib.pca_fit(pixels, pca_components), pixels))
  return {'raw pixels': pixels, f'PCA-{pca_components} of pixels': reduced,
          FEATURES: l2_normalize(features)}


def summary_name(representation):
  """The summary.json prefix of a representation: 'raw pixels' -> 'raw', 'PCA-32 of pixels'
  -> 'pca', 'contrastive features (L2-normalised)' -> 'contrastive'."""
  return representation.split(' ')[0].lower().rstrip('-0123456789')


@dataclasses.dataclass
class Comparison:
  """rows: (representation, dim, acc, nmi, ari); summary: {'<short name>/<metric>': value};
  assignments: {representation: (N,) cluster of each row}."""
  rows: list
  summary: dict
  assignments: dict

  def table(self):
    return tables.key_value_table(self.rows, ('input', 'dim', 'ACC', 'NMI', 'ARI'))


def compare(inputs, labels, k, *, seed, n_init, max_iter):
  """k-means (k clusters, k-means++ from `seed`, best of `n_init`) of every {name: (N, d)}
  of `inputs`, scored against `labels` (N,)."""
  out = Comparison([], {}, {})
  for name, x in inputs.items():
    result = kmeans_lib.kmeans(jax.random.key(seed), x, k, n_init=n_init, max_iter=max_iter)
    pred = np.asarray(result.labels)
    m = clustering.clustering_metrics(labels, pred)
    out.rows.append((name, x.shape[1], m['acc'], m['nmi'], m['ari']))
    out.summary.update({f'{summary_name(name)}/{metric}': float(v) for metric, v in m.items()})
    out.assignments[name] = pred
  return out
