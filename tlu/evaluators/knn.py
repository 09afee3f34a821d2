"""kNN accuracy of the backbone features: rows of the second split classified by their k most
cosine-similar rows of the first (InstDisc's weighted kNN with weighting='temperature', Wu et
al. 2018; `tlu.evaluate.nearest_neighbours`)."""

from tlu import checks
from tlu.evaluate import nearest_neighbours
from tlu.evaluators import EVALUATORS, Evaluator


@EVALUATORS.register('knn')
class KNN(Evaluator):
  """-> {'accuracy'} (prefix 'knn_')."""
  prefix, splits, metrics = 'knn_', ('train', 'test'), ('accuracy',)
  ranges = {'k': checks.POSITIVE_INT, 'temperature': checks.POSITIVE}

  def __init__(self, ctx, splits, k=20, weighting='temperature', temperature=0.07):
    super().__init__(ctx, splits)
    fit_and_score(self.split_names)
    if weighting not in nearest_neighbours.WEIGHTINGS:
      raise ValueError(f'weighting={weighting!r} must be one of {nearest_neighbours.WEIGHTINGS}')
    self.k, self.weighting, self.temperature = k, weighting, temperature

  def __call__(self, state):
    (xtr, ytr), (xte, yte) = self.features(state)
    return {'accuracy': nearest_neighbours.knn_accuracy(
        xtr, ytr, xte, yte, self.k, self.ctx.num_classes, weighting=self.weighting,
        temperature=self.temperature)}


def fit_and_score(splits):
  """ValueError unless `splits` is (split fitted on, split scored)."""
  if len(splits) != 2:
    raise ValueError(f'splits={tuple(splits)}: give two, the split fitted on and the split '
                     'scored')
