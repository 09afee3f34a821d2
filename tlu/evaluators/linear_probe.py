"""Offline linear probe: softmax regression on the frozen backbone features of every training
example, scored on the test split (`probe_input` 'l2': L2-normalised features)."""

from tlu.evaluate.representation import probe_score


class Evaluator:
  """-> {'linear_probe_accuracy'}."""

  def __init__(self, ctx, probe_input='l2', l2=1e-4, steps=500):
    self.ctx, self.kwargs = ctx, dict(probe_input=probe_input, l2=l2, steps=steps)

  def __call__(self, state):
    (xtr, ytr), (xte, yte) = self.ctx.features(state, 'train'), self.ctx.features(state, 'test')
    return {'linear_probe_accuracy': probe_score(xtr, ytr, xte, yte, self.ctx.num_classes,
                                                 **self.kwargs)}
