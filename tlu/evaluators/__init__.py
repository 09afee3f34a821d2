"""Evaluations as named instances (big_vision's `config.evals`).

`config.evals` maps an instance name to its spec:

    evals = {'knn': {'type': 'knn', 'k': 20},
             'online_probe': {'type': 'classification', 'head': 'online_probe',
                              'prefix': 'online_probe_'},
             'validation': {'type': 'classification', 'splits': ('validation',),
                            'prefix': 'validation_', 'loss': False}}

- `type`: an evaluator registered in `EVALUATORS` (one file of this package each);
- `splits`: the named splits it reads (default: the evaluator's own, e.g. ('train',
  'test'): fit on the first, score on the second); a task names 'train' (its labelled
  training split), 'test' and any split of `Splits.extra`;
- `every`: steps between evaluations (default: the task's `eval_every`; 0: at the end
  only); every instance also runs at the last step;
- `prefix`: put before the evaluator's metric names (default: the evaluator's own,
  e.g. 'knn_' -> 'knn_accuracy'); the other keys are the evaluator's options.
Any number of instances of one type may run, each on its own splits and cadence.
An evaluator runs the model in inference mode (BatchNorm on its running averages) and
returns flat named floats; `check` runs every instance's own checks before any compute.
"""

import numpy as np

from tlu import checks
from tlu.evaluators.context import Context
from tlu.registry import Registry

EVALUATORS = Registry('evaluator', 'tlu.evaluators')
HOUSE_KEYS = ('type', 'splits', 'every', 'prefix')


class Evaluator:
  """An evaluator type. Subclasses set `prefix`, `splits` (defaults), `metrics` (the names
  they return, before the prefix) and `needs_model`; `__init__(ctx, splits, **options)`
  checks the options (ValueError naming them) and must not read `ctx` (None when
  checking); `ranges` ({option: tlu.checks.Range}) are checked before it runs;
  `__call__(state)` returns {metric: float}."""
  prefix = ''
  splits = ('test',)
  metrics = ()
  needs_model = False
  ranges = {}   # {option: tlu.checks.Range}, checked before the instance is made

  def __init__(self, ctx, splits):
    self.ctx, self.split_names = ctx, tuple(splits)

  def features(self, state):
    """[(features (N, F), labels (N,))] of each of the instance's splits."""
    return [self.ctx.features(state, s) for s in self.split_names]

  def heads(self):
    """Model heads the instance reads (checked against the model before any compute)."""
    return ()


def _instances(specs, ctx, default_every=0):
  """[(name, every, prefix, evaluator)] of `config.evals`; ValueError naming a bad instance."""
  out, written = [], {}
  for name, spec in dict(specs).items():
    spec = dict(spec or {})
    if 'type' not in spec:
      raise ValueError(f'evals.{name}: give its type (one of {", ".join(EVALUATORS.names())})')
    cls = EVALUATORS.get(spec['type'])
    options = {k: v for k, v in spec.items() if k not in HOUSE_KEYS}
    splits = tuple(spec.get('splits') or cls.splits)
    every = spec.get('every', None)
    every = default_every if every is None else every
    prefix = spec.get('prefix', cls.prefix)
    if not isinstance(every, int) or every < 0:
      raise ValueError(f'evals.{name}.every={every!r} must be an int >= 0')
    checks.check_values(options, cls.ranges, f'evals.{name}.')
    try:
      evaluator = cls(ctx, splits, **options)
    except (TypeError, ValueError) as e:   # TypeError: an option the evaluator does not take
      raise ValueError(f'evals.{name}: {e}') from None
    for metric in cls.metrics:
      if prefix + metric in written:
        raise ValueError(f'evals.{name} and evals.{written[prefix + metric]} both write '
                         f'{prefix + metric!r}: give one of them another prefix')
      written[prefix + metric] = name
    out.append((name, every, prefix, evaluator))
  return out


def check(specs, split_names=None, heads=None):
  """Every instance's checks, without compute: its type, options, splits (when
  `split_names` are given), the heads it reads (when `heads` are given) and that no two
  write the same metric. ValueError naming the instance."""
  for name, _, _, evaluator in _instances(specs, None):
    unknown = [s for s in evaluator.split_names if split_names is not None and
               s not in split_names]
    if unknown:
      raise ValueError(f'evals.{name}.splits: {unknown[0]!r} is not a split of this run '
                       f'(splits: {", ".join(split_names)})')
    missing = [h for h in evaluator.heads() if heads is not None and h not in heads]
    if missing:
      raise ValueError(f'evals.{name} reads the head {missing[0]!r}, which the model does not '
                       f'have (heads: {", ".join(heads)})')


class Evaluations:
  """The instances of `specs` on one context: `due(step)` says whether any runs at `step`;
  `evaluate(state, step=None)` runs those due at `step` (all when None, as at the last
  step) and returns {prefix + metric: value}."""

  def __init__(self, specs, ctx, default_every=0):
    self.instances = _instances(specs, ctx, default_every)

  def __bool__(self):
    return bool(self.instances)

  def due(self, step):
    return any(every and step % every == 0 for _, every, _, _ in self.instances)

  def __call__(self, state, step=None):
    out = {}
    for _, every, prefix, evaluator in self.instances:
      if step is None or (every and step % every == 0):
        out.update({prefix + k: v for k, v in evaluator(state).items()})
    return out


def score_pixels(specs, splits, batch_size, mesh):
  """The instances of `specs` that need no model, on flattened raw pixels in [0, 1] of
  splits.train / splits.test: the baseline a learned representation must beat."""

  def flat(source):
    examples = [source[i] for i in range(len(source))]
    x = np.stack([np.asarray(ex['image']) for ex in examples])
    return (x.reshape(len(x), -1).astype(np.float32) / 255.0,
            np.asarray([int(ex['label']) for ex in examples]))

  specs = {k: v for k, v in dict(specs).items() if not EVALUATORS.get(dict(v).get('type')).needs_model}
  ctx = Context(model=None, mesh=mesh, splits={}, num_classes=splits.num_classes,
                batch_size=batch_size,
                fixed={'train': flat(splits.train), 'test': flat(splits.test)})
  return Evaluations(specs, ctx)(None)
