"""Range checks, declared by the code that reads the values, run before any compute.

Each owner declares the ranges of its own block's keys, exact names only, as
`{key: Range}`: a method class its `ranges` (applied to `config.method`), an evaluator
class its `ranges` (each `config.evals.<name>`), a backbone its registered `ranges`
(`config.model`), `tlu.train.optim.RANGES` (`config.optimizer`), the augmentation and
dataset modules theirs, each stage its own keys; the house (`TASK`) keeps only a task
config's own keys: batch sizes, step budget, evaluation and checkpoint cadence. No rule
applies to a key by its name elsewhere. `check_values` applies one owner's table to one
block; a stage wraps the checks of a block nested in its config in `under(prefix)`, so a
message names the key as the user wrote it ("adapt.dann.optimizer.momentum=1.5: must be a
number in [0, 1]"). `check_finite` refuses a NaN or infinite float anywhere in a config,
when the command line is parsed.
"""

import contextlib
import dataclasses
import math
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Range:
  """The values a key may take.

  ok(number) -> bool for every number of the value (a tuple's elements one by one);
  allowed: what the error message says; kind: 'number' (an int or float, not a bool,
  or a tuple of them), 'integer' (ints only), 'numbers' / 'widths' (a non-empty tuple of
  numbers / ints) or 'bool' (True or False; `ok` unused).
  """
  ok: Callable[[float], bool]
  allowed: str
  kind: str = 'number'


POSITIVE_INT = Range(lambda v: v > 0, 'an integer >= 1', 'integer')
NON_NEGATIVE_INT = Range(lambda v: v >= 0, 'an integer >= 0 (0: off or all)', 'integer')
POSITIVE = Range(lambda v: v > 0, 'a finite number > 0')
NON_NEGATIVE = Range(lambda v: v >= 0, 'a finite number >= 0')
UNIT = Range(lambda v: 0 <= v <= 1, 'a number in [0, 1]')
BELOW_ONE = Range(lambda v: 0 <= v < 1, 'a number in [0, 1)')
WIDTHS = Range(lambda v: v > 0, 'a tuple of widths >= 1', 'widths')
BANDWIDTHS = Range(lambda v: v > 0, 'a tuple of numbers > 0', 'numbers')
FEW_LABELS = Range(lambda v: v >= 0, 'integers >= 0 (0: every label)', 'integer')
FLAG = Range(lambda v: True, 'True or False', 'bool')


class RangeError(ValueError):
  """A value out of its range: '<dotted key>=<value>: must be <allowed>'."""

  def __init__(self, path, value, allowed):
    super().__init__(f'{path}={value!r}: must be {allowed}')
    self.path, self.value, self.allowed = path, value, allowed


@contextlib.contextmanager
def under(prefix):
  """Re-raises a RangeError of the block checked inside with its key as the user wrote it:
  `prefix` before it, or `prefix(key)` when a function (a block assembled from several)."""
  try:
    yield
  except RangeError as e:
    path = prefix(e.path) if callable(prefix) else prefix + e.path
    raise RangeError(path, e.value, e.allowed) from None


def _is_number(v):
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v):
  return isinstance(v, int) and not isinstance(v, bool)


def fits(value, rng):
  """Whether `value` (a scalar or a tuple) is one `rng` allows."""
  if rng.kind == 'bool':
    return isinstance(value, bool)
  sequence = isinstance(value, (tuple, list))
  if rng.kind in ('widths', 'numbers') and not (sequence and value):
    return False
  is_type = _is_number if rng.kind in ('number', 'numbers') else _is_int
  return all(is_type(v) and rng.ok(v) for v in (value if sequence else (value,)))


def check_values(block, ranges, where=''):
  """RangeError naming the first key of `ranges` whose value in `block` is out of range.

  block: a mapping (ConfigDict or dict); ranges: {key: Range}; where: the block's dotted
  path with its trailing dot ('method.'). Keys the block does not have, and values None
  (the owner's default), are skipped.
  """
  if block is None:
    return
  for key, rng in ranges.items():
    if key in block and block[key] is not None and not fits(block[key], rng):
      raise RangeError(f'{where}{key}', block[key], rng.allowed)


TASK = {   # the house's own keys of a task config
    'batch_size': POSITIVE_INT, 'eval_batch_size': POSITIVE_INT,
    'steps': Range(lambda v: v >= 0, 'an integer >= 1 (or 0 with epochs >= 1)', 'integer'),
    'epochs': NON_NEGATIVE_INT, 'steps_per_epoch': NON_NEGATIVE_INT,
    'checkpoint_every': POSITIVE_INT, 'log_every': POSITIVE_INT,
    'keep_checkpoints': POSITIVE_INT, 'eval_every': NON_NEGATIVE_INT,
}


def check_task_values(cfg, where=''):
  """The house's checks of a task config's own keys, and its step budget."""
  check_values(cfg, TASK, where)
  if 'online_probe' in cfg and not isinstance(cfg['online_probe'], bool):
    raise RangeError(f'{where}online_probe', cfg['online_probe'], 'True or False')
  steps, epochs = cfg.get('steps', 0), cfg.get('epochs', 0)
  if not (steps >= 1 or (steps == 0 and epochs >= 1)):
    raise RangeError(f'{where}steps', steps, 'an integer >= 1 (or 0 with epochs >= 1)')


def _leaves(tree, prefix=''):
  for key, value in tree.items():
    path = f'{prefix}{key}'
    if isinstance(value, dict):
      yield from _leaves(value, path + '.')
    else:
      yield path, value


def check_finite(config):
  """RangeError naming the first float of `config` (nested, tuples too) that is not finite."""
  tree = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  for path, value in _leaves(tree):
    values = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
      raise RangeError(path, value, 'finite')
