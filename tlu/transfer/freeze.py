"""Frozen layers and per-group learning rates, as optax labels decided by leaf paths.

Shared layers are frozen or trained slower than specific layers. As in
big_vision's `schedule` list of `(regex, schedule)` where None means frozen,
each leaf gets a label from the first regex that full-matches its `/`-joined
path, and `optax.multi_transform` routes every label to its own transform. A
frozen leaf goes through `optax.set_to_zero()`, so nothing in the base optimizer
(momentum, weight decay) can move it. "Frozen means frozen" also
covers BatchNorm running statistics: the same frozen regexes, passed to the model
as `tlu.models.norm.Mode(True, frozen_patterns(groups))`, make every BatchNorm
layer whose `<path>/scale` they match normalise with its running averages and
leave them as they are. One spec drives both; a task config's `freeze` is it
(`tlu.train.task`)::

  groups = (('backbone/.*', None),)                  # or ('backbone/.*', 0.1)
  tx = masked_optimizer(lambda: optax.adamw(1e-3, weight_decay=1e-4), params, groups)
  mode = tlu.models.norm.train_mode(frozen_patterns(groups))   # model.apply(..., train=mode)

Gradual unfreezing (ULMFiT, Howard & Ruder 2018; a task config's `unfreeze`, the transfer
strategy `gradual`; `unfreeze_schedule`, `masked_optimizer(..., unfreeze=...)`) keeps one optimizer and one optimizer-state layout for the whole run: each
label's updates pass through a 0/1 gate driven by the optimizer's own update
count, so the frozen set of *parameters* changes inside the compiled step
without re-jitting. The BatchNorm side (which layers run on running averages)
is fixed when the method's `Mode` is built; a run that must also release
BatchNorm layers stage by stage builds the next stage's method and step at the
boundary (one compile per stage)::

  schedule = unfreeze_schedule([(1000, ('backbone/stage4.*',)), (2000, ('backbone/.*',))])
  tx = masked_optimizer(base_tx_fn, params, groups, unfreeze=schedule)
"""

import dataclasses
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from tlu.transfer.paths import flatten, map_with_paths, match_any

FROZEN = 'frozen'


def freeze_mask(params, patterns):
  """Tree of bools shaped like `params`: True where a regex full-matches the leaf path."""
  return map_with_paths(lambda path, _: match_any(path, patterns), params)


def frozen_patterns(groups):
  """The regexes of `groups` whose multiplier is None (frozen), in order."""
  return tuple(regex for regex, multiplier in groups if multiplier is None)


def group_multiplier(path, groups):
  """Learning-rate multiplier of `path`: first full-matching group wins; None = frozen.

  A path that no group matches trains at multiplier 1.0.
  """
  for regex, multiplier in groups:
    if re.fullmatch(regex, path):
      return None if multiplier is None else float(multiplier)
  return 1.0


def _label(multiplier, unfreeze_step=0):
  if multiplier is None:
    return FROZEN
  label = f'lr*{multiplier!r}'
  return f'{label}@{unfreeze_step}' if unfreeze_step else label


def param_labels(params, groups):
  """Tree of optax labels shaped like `params`, for `optax.multi_transform`.

  Args:
    params: a parameter tree (arrays or `jax.ShapeDtypeStruct`s).
    groups: ordered sequence of `(regex, lr_multiplier_or_None)`; the first
      regex that full-matches a leaf path decides; None means frozen; leaves no
      regex matches get multiplier 1.0.

  Returns:
    Tree of str: `'frozen'` or `'lr*<multiplier>'` (e.g. `'lr*0.1'`, `'lr*1.0'`).
  """
  return map_with_paths(lambda path, _: _label(group_multiplier(path, groups)), params)


class GateState(NamedTuple):
  count: jax.Array  # number of updates seen, int32 scalar


def hold_until(step):
  """Zeroes updates while fewer than `step` updates have been made, then passes them.

  A `jnp.where` gate rather than a 0/1 factor, so an inf/NaN update computed
  while frozen cannot leak into the parameters (0 * NaN is NaN).
  """

  def init_fn(params):
    del params
    return GateState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    del params
    open_ = state.count >= step
    updates = jax.tree.map(lambda u: jnp.where(open_, u, jnp.zeros_like(u)), updates)
    return updates, GateState(count=optax.safe_int32_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


@dataclasses.dataclass(frozen=True)
class UnfreezeSchedule:
  """Gradual unfreezing: leaves named by a stage are frozen until its step.

  `stages` is sorted by step; a leaf named by several stages unfreezes at the
  earliest of them. Leaves no stage names are never frozen by the schedule.
  """
  stages: tuple  # ((step, (regex, ...)), ...), ascending steps

  def unfreeze_step(self, path):
    """First update index at which `path` trains (0: never held back)."""
    for step, patterns in self.stages:
      if match_any(path, patterns):
        return step
    return 0

  def __call__(self, step):
    """Regexes of the leaves still frozen at update index `step` (a Python int).

    A regex of a later stage excludes what earlier stages already unfroze
    (negative lookahead), so `match_any` agrees with `unfreeze_step`.
    """
    done = [p for s, patterns in self.stages if s <= step for p in patterns]
    pending = [p for s, patterns in self.stages if s > step for p in patterns]
    if not done:
      return tuple(pending)
    exclude = '|'.join(f'(?:{p})' for p in done)
    return tuple(f'(?!(?:{exclude})\\Z)(?:{p})' for p in pending)


def unfreeze_schedule(stages):
  """`UnfreezeSchedule` from `[(step, patterns_to_unfreeze), ...]` (any order).

  Everything a stage names starts frozen and trains from update index `step`
  on (the `step`-th update, counting from 0, is the first applied). Calling the
  result with a step gives the frozen regexes at that step.
  """
  norm = []
  for step, patterns in stages:
    if int(step) != step or step < 0:
      raise ValueError(f'unfreeze step must be a non-negative int, got {step!r}')
    norm.append((int(step), (patterns,) if isinstance(patterns, str) else tuple(patterns)))
  return UnfreezeSchedule(tuple(sorted(norm, key=lambda s: s[0])))


def check_unfreeze(stages, params, steps):
  """ValueError unless each stage of a task's `unfreeze` is (step in [0, steps), regexes that
  each full-match some parameter path of `params`)."""
  paths = list(flatten(params))
  for stage in stages:
    if (len(stage) != 2 or isinstance(stage[0], bool) or not isinstance(stage[0], int)
        or not 0 <= stage[0] < steps or isinstance(stage[1], str) or not stage[1]):
      raise ValueError(f'unfreeze entry {tuple(stage)!r}: use (step in [0, {steps}), '
                       '(regex, ...))')
    for pattern in stage[1]:
      if not any(match_any(p, (pattern,)) for p in paths):
        raise ValueError(f'unfreeze pattern {pattern!r} matches no parameter path '
                         f'(e.g. {paths[0]!r})')


def masked_optimizer(base_tx_fn, params, groups=(), unfreeze=None):
  """The base optimizer per group: frozen leaves get zero updates, others scaled.

  Per label, the transform is `optax.set_to_zero()` for frozen leaves and
  `optax.chain(base_tx_fn(), optax.scale(m))` otherwise. Scaling the final
  update (not the gradient) by `m` is a true learning-rate multiplier also for
  Adam, whose update does not scale with the gradient; with AdamW it scales the
  decoupled weight decay too, as a smaller learning rate would.

  Each label has its own base-optimizer state, so transforms that look across
  leaves (e.g. `optax.clip_by_global_norm`) see one group at a time; chain
  those before this optimizer if they must see every gradient.

  Args:
    base_tx_fn: () -> optax.GradientTransformation, e.g.
      `lambda: optax.adamw(1e-3, weight_decay=1e-4)`; called once per label.
    params: the parameter tree (arrays or `jax.ShapeDtypeStruct`s); only its
      structure and paths are used.
    groups: ordered `(regex, lr_multiplier_or_None)`, see `param_labels`.
    unfreeze: optional `UnfreezeSchedule` (or its stages list). A leaf it names
      gets zero updates until the optimizer has made `unfreeze_step` updates;
      its base-optimizer state (e.g. Adam moments) is kept up to date meanwhile
      so the first unfrozen step is a normal one. Leaves frozen by `groups`
      stay frozen.

  Returns:
    `optax.multi_transform(...)`, a GradientTransformation over `params`.
  """
  if unfreeze is not None and not isinstance(unfreeze, UnfreezeSchedule):
    unfreeze = unfreeze_schedule(unfreeze)
  settings = {}

  def label(path, _):
    multiplier = group_multiplier(path, groups)
    step = unfreeze.unfreeze_step(path) if unfreeze is not None and multiplier is not None else 0
    name = _label(multiplier, step)
    settings[name] = (multiplier, step)
    return name

  labels = map_with_paths(label, params)
  transforms = {}
  for name, (multiplier, step) in settings.items():
    if multiplier is None:
      transforms[name] = optax.set_to_zero()
      continue
    parts = [base_tx_fn()]
    if multiplier != 1.0:
      parts.append(optax.scale(multiplier))
    if step:
      parts.append(hold_until(step))
    transforms[name] = optax.chain(*parts) if len(parts) > 1 else parts[0]
  return optax.multi_transform(transforms, labels)
