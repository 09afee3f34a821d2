"""k-means of the backbone features of the rows of every named split together (L2-normalised
unless `normalize=False`; k-means++, the lowest-inertia of `n_init` restarts), scored against
the labels: Hungarian accuracy, NMI and ARI (`tlu.evaluate.clustering`)."""

import jax
import numpy as np

from tlu import checks
from tlu.evaluate import clustering
from tlu.evaluate.features import l2_normalize
from tlu.evaluators import EVALUATORS, Evaluator
from tlu.unsupervised import kmeans as kmeans_lib


def cluster(x, k, *, seed, n_init, max_iter):
  """(N,) cluster of each row of x (N, d): k-means++ from `seed`, best of `n_init` runs."""
  return np.asarray(kmeans_lib.kmeans(jax.random.key(seed), x, k, n_init=n_init,
                                      max_iter=max_iter).labels)


@EVALUATORS.register('kmeans')
class KMeans(Evaluator):
  """-> {'acc', 'nmi', 'ari'} (prefix 'kmeans_'); num_clusters 0: the number of classes."""
  prefix, splits, metrics = 'kmeans_', ('train', 'test'), ('acc', 'nmi', 'ari')
  ranges = {'num_clusters': checks.NON_NEGATIVE_INT, 'n_init': checks.POSITIVE_INT,
            'max_iter': checks.POSITIVE_INT}

  def __init__(self, ctx, splits, num_clusters=0, n_init=10, max_iter=300, seed=0,
               normalize=True):
    super().__init__(ctx, splits)
    self.num_clusters, self.normalize = num_clusters, normalize
    self.options = dict(seed=seed, n_init=n_init, max_iter=max_iter)

  def __call__(self, state):
    feats, labels = (np.concatenate(a) for a in zip(*self.features(state)))
    x = l2_normalize(feats) if self.normalize else feats
    pred = cluster(x, self.num_clusters or self.ctx.num_classes, **self.options)
    return {k: float(v) for k, v in clustering.clustering_metrics(labels, pred).items()}
