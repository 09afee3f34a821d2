"""kNN accuracy of the backbone features: test rows classified by their k most cosine-similar
training rows (InstDisc's weighted kNN with weighting='temperature', Wu et al. 2018)."""

from tlu.evaluate.representation import knn_score


class Evaluator:
  """-> {'knn_accuracy'}."""

  def __init__(self, ctx, k=20, weighting='temperature', temperature=0.07):
    self.ctx, self.kwargs = ctx, dict(k=k, weighting=weighting, temperature=temperature)

  def __call__(self, state):
    (xtr, ytr), (xte, yte) = self.ctx.features(state, 'train'), self.ctx.features(state, 'test')
    return {'knn_accuracy': knn_score(xtr, ytr, xte, yte, self.ctx.num_classes, **self.kwargs)}
