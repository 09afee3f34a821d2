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
