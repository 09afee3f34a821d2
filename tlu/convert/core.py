"""What every converter shares: the rules that name where each tlu leaf comes from, and the
strict check of a file against the architecture it is said to hold.

A family converter (ResNet in torch layout, ViT in timm or big_vision layout) lists, for
the architecture asked for, one `Rule` per group of tlu leaves: the source keys it reads
and how it turns them into the leaves. `apply_rules` then insists that the file holds
every key the rules read (else "missing key"), no key they do not read beyond the ones a
family may ignore (else "a variant tlu does not convert", e.g. layer scale), and values of
exactly the shapes the tlu model has (else "wrong arch", with the architecture the file
looks like). Every leaf is reported as in `tlu.transfer.surgery.TransplantReport`.
"""

import dataclasses
from typing import Callable

import numpy as np

from tlu.transfer.paths import SEP, unflatten
from tlu.transfer.surgery import TransplantReport


class ConvertError(ValueError):
  """A checkpoint file that does not convert to the architecture asked for; says why."""


@dataclasses.dataclass(frozen=True)
class Rule:
  """targets: tlu leaves ('params/backbone/...' or 'batch_stats/...') made from `sources`
  (file keys) by `fn(*arrays) -> tuple of arrays, one per target`; `how`: what fn does
  ('' for a plain copy)."""
  targets: tuple
  sources: tuple
  fn: Callable = lambda *xs: xs
  how: str = ''


def copy(target, source):
  return Rule((target,), (source,))


def conv_oihw(target, source):
  """torch conv weight (out, in, kh, kw) -> flax kernel (kh, kw, in, out)."""
  return Rule((target,), (source,), lambda w: (np.transpose(w, (2, 3, 1, 0)),),
              'OIHW->HWIO')


def dense_oi(target, source):
  """torch Linear weight (out, in) -> flax Dense kernel (in, out)."""
  return Rule((target,), (source,), lambda w: (np.transpose(w),), 'transposed')


def batch_norm(prefix, source_prefix):
  """torch BatchNorm `<source_prefix>.{weight,bias,running_mean,running_var}` -> tlu's
  params `<prefix>/{scale,bias}` and batch_stats `<prefix>/{mean,var}`."""
  return [copy(f'params/{prefix}/scale', f'{source_prefix}.weight'),
          copy(f'params/{prefix}/bias', f'{source_prefix}.bias'),
          copy(f'batch_stats/{prefix}/mean', f'{source_prefix}.running_mean'),
          copy(f'batch_stats/{prefix}/var', f'{source_prefix}.running_var')]


def _shape(x):
  return tuple(int(d) for d in np.shape(x))


def _listing(keys, n=3):
  keys = sorted(keys)
  more = f' (+{len(keys) - n} more)' if len(keys) > n else ''
  return ', '.join(keys[:n]) + more


def apply_rules(arrays, rules, target_shapes, *, what, ignorable=lambda key: False, guess=None):
  """(variables {'params', 'batch_stats'} of float32 numpy arrays, TransplantReport).

  arrays: {file key: array}; rules: `Rule`s covering every tlu leaf; target_shapes:
  {'params/...': shape} of the tlu model; what: e.g. "resnet18 (torchvision layout)";
  ignorable(key): file keys that may go unused (num_batches_tracked); guess: () -> a
  sentence on what the file looks like, appended to shape and key errors.
  """
  hint = lambda: (f'; {guess()}' if guess is not None and guess() else '')
  needed = {s for r in rules for s in r.sources}
  missing = sorted(needed - set(arrays))
  if missing:
    raise ConvertError(f'the file lacks {_listing(missing)}, which {what} needs{hint()}')
  unknown = sorted(k for k in set(arrays) - needed if not ignorable(k))
  if unknown:
    raise ConvertError(f'the file holds {_listing(unknown)}, which {what} does not have '
                       f'(another architecture, or a variant tlu does not convert){hint()}')
  made = {t for r in rules for t in r.targets}
  lacking = sorted(set(target_shapes) - made)
  if lacking:   # a converter bug rather than a bad file, but say it the same way
    raise ConvertError(f'no rule of {what} fills {_listing(lacking)}')
  flat, report = {}, TransplantReport()
  for rule in rules:
    source = ' + '.join(rule.sources)
    try:
      values = rule.fn(*(np.asarray(arrays[s]) for s in rule.sources))
    except ValueError as e:   # a reshape that the file's sizes do not allow
      raise ConvertError(f'{source} cannot be made into {", ".join(rule.targets)} of {what} '
                         f'({e}){hint()}') from None
    for target, value in zip(rule.targets, values):
      if target not in target_shapes:
        raise ConvertError(f'{what} has no leaf {target} for {source}{hint()}')
      if _shape(value) != tuple(target_shapes[target]):
        raise ConvertError(
            f'{source} gives {target} the shape {_shape(value)}, but {what} needs '
            f'{tuple(target_shapes[target])}{hint()}')
      how = [rule.how] if rule.how else []
      dtype = np.asarray(value).dtype
      if dtype != np.float32:
        how.append(f'{dtype}->float32')
      flat[target] = np.asarray(value, np.float32)
      if how:
        report.adapted.append((target, source, ', '.join(how)))
      else:
        report.copied.append((target, source))
  report.unused_source.extend(sorted(set(arrays) - needed))
  collections = {}
  for path, value in flat.items():
    col, rest = path.split(SEP, 1)
    collections.setdefault(col, {})[rest] = value
  variables = {col: unflatten(leaves) for col, leaves in collections.items()}
  variables.setdefault('batch_stats', {})
  return variables, report
