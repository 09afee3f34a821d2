"""Few-label linear probe: the probe fitted on `labels_per_class` seeded training examples per
class, mean and std of the test accuracy over `trials` subsets."""

from tlu.evaluate.representation import few_label_scores


class Evaluator:
  """-> {'few_shot_probe_accuracy', 'few_shot_probe_accuracy_std'}."""

  def __init__(self, ctx, labels_per_class=10, probe_input='l2', l2=1e-3, trials=5, seed=0,
               steps=500):
    self.ctx = ctx
    self.kwargs = dict(labels_per_class=labels_per_class, probe_input=probe_input, l2=l2,
                       trials=trials, seed=seed, steps=steps)

  def __call__(self, state):
    (xtr, ytr), (xte, yte) = self.ctx.features(state, 'train'), self.ctx.features(state, 'test')
    return few_label_scores(xtr, ytr, xte, yte, self.ctx.num_classes, **self.kwargs)
