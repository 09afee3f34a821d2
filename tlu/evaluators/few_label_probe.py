"""Few-label linear probe: the linear probe fitted on `labels_per_class` seeded rows per class
of the first split (`tlu.data.subsets.few_labels`, seeds seed + i), scored on the second;
mean and std of the accuracy over `trials` subsets."""

import numpy as np

from tlu import checks
from tlu.data.subsets import few_labels
from tlu.evaluators import EVALUATORS, Evaluator
from tlu.evaluators.knn import fit_and_score
from tlu.evaluators.linear_probe import check_probe, probe_accuracy


@EVALUATORS.register('few_label_probe')
class FewLabelProbe(Evaluator):
  """-> {'accuracy', 'accuracy_std'} (prefix 'few_shot_probe_'); l2 1e-3 is C = 10 at 100 rows."""
  prefix, splits, metrics = 'few_shot_probe_', ('train', 'test'), ('accuracy', 'accuracy_std')
  ranges = {'labels_per_class': checks.POSITIVE_INT, 'trials': checks.POSITIVE_INT,
            'l2': checks.NON_NEGATIVE, 'steps': checks.POSITIVE_INT}

  def __init__(self, ctx, splits, labels_per_class=10, probe_input='l2', l2=1e-3, trials=5,
               seed=0, steps=500):
    super().__init__(ctx, splits)
    fit_and_score(self.split_names)
    check_probe(probe_input)
    self.labels_per_class, self.trials, self.seed = labels_per_class, trials, seed
    self.options = dict(probe_input=probe_input, l2=l2, steps=steps)

  def __call__(self, state):
    (xtr, ytr), (xte, yte) = self.features(state)
    ytr = np.asarray(ytr).reshape(-1)
    accs = []
    for trial in range(self.trials):
      idx = few_labels(ytr, self.labels_per_class, self.seed + trial)
      accs.append(probe_accuracy(xtr[idx], ytr[idx], xte, yte, self.ctx.num_classes,
                                 **self.options))
    return {'accuracy': float(np.mean(accs)), 'accuracy_std': float(np.std(accs))}
