"""Evaluators, named in the config and found by name (big_vision's plug-in habit).

`config.evaluators` maps a name to its keyword arguments, e.g.
`{'classification': {}, 'knn': {'k': 20}}`; `build(config.evaluators, ctx)` gives
one `evaluate(state) -> {name: value}` that runs them all. Each evaluator is a
module `tlu/evaluators/<name>.py` with a class `Evaluator(ctx, **kwargs)` whose
call on a train state returns flat named floats. Every evaluator runs the model in
inference mode (BatchNorm on its running averages).
"""

import sys

from tlu import plugins
from tlu.evaluators.context import Context  # noqa: F401

_NOT_EVALUATORS = ('context',)


def names():
  return plugins.names(sys.modules[__name__], _NOT_EVALUATORS)


def get(name):
  """The Evaluator class of `tlu/evaluators/<name>.py`; ValueError naming the known ones."""
  return plugins.load(sys.modules[__name__], name, 'evaluator', _NOT_EVALUATORS).Evaluator


def build(specs, ctx):
  """specs: {name: kwargs mapping}; returns evaluate(state) -> merged {metric: value}."""
  evaluators = [get(name)(ctx, **dict(kwargs or {})) for name, kwargs in dict(specs).items()]

  def evaluate(state):
    out = {}
    for evaluator in evaluators:
      out.update(evaluator(state))
    return out

  return evaluate


def score_pixels(specs, splits, batch_size, mesh):
  """The evaluators `specs` on flattened raw pixels in [0, 1] of splits.train / splits.test:
  the baseline a learned representation must beat ({metric: value})."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  def flat(source):
    examples = [source[i] for i in range(len(source))]
    x = np.stack([np.asarray(ex['image']) for ex in examples])
    return (x.reshape(len(x), -1).astype(np.float32) / 255.0,
            np.asarray([int(ex['label']) for ex in examples]))

  ctx = Context(model=None, mesh=mesh, test=splits.test, train=splits.train,
                num_classes=splits.num_classes, batch_size=batch_size,
                fixed={'train': flat(splits.train), 'test': flat(splits.test)})
  return build(specs, ctx)(None)
