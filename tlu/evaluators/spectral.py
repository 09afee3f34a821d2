"""Spectral clustering of the backbone features of the rows of every named split together
(L2-normalised unless `normalize_features=False`; `tlu.unsupervised.spectral`: a kNN or RBF
affinity, its normalised-Laplacian embedding, k-means on it), scored against the labels:
Hungarian accuracy, NMI and ARI (`tlu.evaluate.clustering`)."""

import jax
import numpy as np

from tlu import checks
from tlu.evaluate import clustering
from tlu.evaluate.features import l2_normalize
from tlu.evaluators import EVALUATORS, Evaluator
from tlu.unsupervised import spectral

AFFINITIES, EMBEDDINGS = ('knn', 'rbf'), ('rows', 'degree', 'none')


@EVALUATORS.register('spectral')
class Spectral(Evaluator):
  """-> {'acc', 'nmi', 'ari'} (prefix 'spectral_'); num_clusters 0: the number of classes.

  affinity 'knn' (n_neighbors) or 'rbf' (gamma); landmarks 0: the dense path up to
  max_dense rows, then 1,000 landmarks (Chen & Cai 2011), m > 0: m landmarks; normalize:
  the embedding's row rule ('rows': Ng, Jordan & Weiss; 'degree': scikit-learn's).
  """
  prefix, splits, metrics = 'spectral_', ('train', 'test'), ('acc', 'nmi', 'ari')
  ranges = {'num_clusters': checks.NON_NEGATIVE_INT, 'n_neighbors': checks.POSITIVE_INT,
            'landmarks': checks.NON_NEGATIVE_INT, 'max_dense': checks.POSITIVE_INT,
            'n_init': checks.POSITIVE_INT, 'gamma': checks.POSITIVE}

  def __init__(self, ctx, splits, num_clusters=0, affinity='knn', n_neighbors=10, gamma=1.0,
               landmarks=0, max_dense=8192, normalize='rows', n_init=10, seed=0,
               normalize_features=True):
    super().__init__(ctx, splits)
    if affinity not in AFFINITIES or normalize not in EMBEDDINGS:
      raise ValueError(f'affinity={affinity!r} (one of {AFFINITIES}), normalize={normalize!r} '
                       f'(one of {EMBEDDINGS})')
    self.num_clusters, self.seed, self.normalize_features = num_clusters, seed, normalize_features
    self.options = dict(affinity=affinity, n_neighbors=n_neighbors, gamma=gamma,
                        landmarks=landmarks or None, max_dense=max_dense, normalize=normalize,
                        n_init=n_init)

  def __call__(self, state):
    feats, labels = (np.concatenate(a) for a in zip(*self.features(state)))
    x = l2_normalize(feats) if self.normalize_features else feats
    pred = spectral.spectral_clustering(jax.random.key(self.seed), x,
                                        self.num_clusters or self.ctx.num_classes, **self.options)
    return {k: float(v) for k, v in clustering.clustering_metrics(labels, pred).items()}
