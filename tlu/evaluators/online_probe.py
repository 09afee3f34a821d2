"""The online linear probe's test accuracy: the head `online_probe` that a task with
`online_probe=True` trains beside its method (`tlu.methods.base.Method.objective`), scored
on the test split with BatchNorm in inference mode. The task adds this evaluator itself."""

from tlu.evaluators import classification
from tlu.methods.base import PROBE


class Evaluator(classification.Evaluator):
  """-> {'online_probe_accuracy', 'online_probe_loss'}: argmax accuracy and mean CE of the
  probe's logits (N, C) over the whole test split."""

  def __init__(self, ctx):
    super().__init__(ctx, head=PROBE)

  def __call__(self, state):
    return {f'{PROBE}_{k}': v for k, v in super().__call__(state).items()}
