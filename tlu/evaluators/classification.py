"""Classification accuracy and cross-entropy of a head on a labelled split (target accuracy,
for adaptation, is this evaluator on the target's test split; the online linear probe's, on
the head `online_probe`)."""

import functools

from tlu.evaluate.classify import classifier_metrics
from tlu.evaluators import EVALUATORS, Evaluator
from tlu.train.step import accuracy_sums, make_eval_step


@functools.lru_cache(maxsize=32)
def _eval_step(model, mesh, head):
  return make_eval_step(accuracy_sums(model, head), mesh)


@EVALUATORS.register('classification')
class Classification(Evaluator):
  """-> {'accuracy', 'loss'}: argmax accuracy and mean CE of `head`'s logits (N, C), exact
  over the split (`loss=False`: accuracy only)."""
  metrics = ('accuracy', 'loss')
  needs_model = True

  def __init__(self, ctx, splits, head='head', loss=True):
    super().__init__(ctx, splits)
    if len(self.split_names) != 1:
      raise ValueError(f'splits={self.split_names}: classification scores one split')
    self.head, self.loss = head, bool(loss)

  def heads(self):
    return (self.head,)

  def __call__(self, state):
    step = _eval_step(self.ctx.model, self.ctx.mesh, self.head)
    out = classifier_metrics(step, state, self.ctx.splits[self.split_names[0]],
                             self.ctx.batch_size, self.ctx.mesh)
    return out if self.loss else {'accuracy': out['accuracy']}
