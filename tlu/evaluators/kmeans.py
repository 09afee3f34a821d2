"""k-means of the L2-normalised backbone features, scored against the labels: Hungarian
accuracy, NMI and ARI (`tlu.evaluate.clustering`)."""

from tlu.evaluate.representation import kmeans_scores


class Evaluator:
  """-> {'kmeans_acc', 'kmeans_nmi', 'kmeans_ari'}; num_clusters default: the class count."""

  def __init__(self, ctx, num_clusters=0, n_init=10, rows='all', seed=0):
    self.ctx = ctx
    self.num_clusters = num_clusters or ctx.num_classes
    self.kwargs = dict(n_init=n_init, rows=rows, seed=seed)

  def __call__(self, state):
    (xtr, ytr), (xte, yte) = self.ctx.features(state, 'train'), self.ctx.features(state, 'test')
    return kmeans_scores(xtr, ytr, xte, yte, self.num_clusters, **self.kwargs)
