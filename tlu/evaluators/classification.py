"""Classification accuracy and cross-entropy of a head on the test split (target accuracy, for
adaptation, is this evaluator on the target's test split)."""

import functools

from tlu.evaluate.classify import classifier_metrics
from tlu.train.step import accuracy_sums, make_eval_step


@functools.lru_cache(maxsize=32)
def _eval_step(model, mesh, head):
  return make_eval_step(accuracy_sums(model, head), mesh)


class Evaluator:
  """-> {'accuracy', 'loss'} of `head`'s argmax and CE, exact over the split."""

  def __init__(self, ctx, head='head'):
    self.ctx, self.head = ctx, head

  def __call__(self, state):
    step = _eval_step(self.ctx.model, self.ctx.mesh, self.head)
    return classifier_metrics(step, state, self.ctx.test, self.ctx.batch_size, self.ctx.mesh)
