"""Optimizers and learning-rate schedules from config, all optax, each registered by name
(`OPTIMIZERS`, `SCHEDULES`: `config.optimizer.name`, `config.optimizer.schedule`)."""

import re

import jax
import jax.numpy as jnp
import optax

from tlu import checks
from tlu.registry import Registry
from tlu.transfer.paths import flatten, map_with_paths, match_any

SCHEDULES = Registry('schedule')     # name -> (peak lr, total steps, warmup steps) -> schedule
OPTIMIZERS = Registry('optimizer')   # name -> (cfg, lr schedule, weight-decay mask) -> tx
RANGES = {   # of `config.optimizer`, whichever optimizer it names
    'lr': checks.POSITIVE, 'weight_decay': checks.NON_NEGATIVE, 'momentum': checks.UNIT,
    'warmup_steps': checks.NON_NEGATIVE_INT, 'grad_clip_norm': checks.NON_NEGATIVE,
    'base_batch_size': checks.POSITIVE_INT, 'grad_accum_steps': checks.POSITIVE_INT}


@SCHEDULES.register('constant')
def _constant(lr, total_steps, warmup):
  del total_steps, warmup
  return optax.constant_schedule(lr)


@SCHEDULES.register('cosine')
def _cosine(lr, total_steps, warmup):
  return optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))


@SCHEDULES.register('fixmatch_cosine')
def _fixmatch_cosine(lr, total_steps, warmup):
  """FixMatch (Sohn et al. 2020, section 3): lr cos(7 pi k / (16 K)), k the step after the
  warmup and K = total_steps - warmup; ends at lr cos(7 pi / 16) ~ 0.2 lr, not 0."""
  steps = max(total_steps - warmup, 1)
  return lambda count: lr * jnp.cos(7.0 * jnp.pi * count / (16.0 * steps))


@SCHEDULES.register('dann')
def _dann(lr, total_steps, warmup):
  """Ganin & Lempitsky 2015: mu_p = mu_0 / (1 + 10 p)^0.75, p in [0, 1]."""
  steps = max(total_steps - warmup, 1)
  return lambda count: lr / (1.0 + 10.0 * count / steps) ** 0.75


@SCHEDULES.register('step')
def _step(lr, total_steps, warmup):
  """x0.1 at 50% and 75% of the run (the schedule's count starts after the warmup)."""
  return optax.piecewise_constant_schedule(
      lr, {int(total_steps * f) - warmup: 0.1 for f in (0.5, 0.75)})


@OPTIMIZERS.register('sgd')
def _sgd(cfg, lr, decay_mask):
  return optax.chain(optax.add_decayed_weights(cfg.get('weight_decay', 0.0), decay_mask),
                     optax.sgd(lr, momentum=cfg.get('momentum', 0.9), nesterov=True))


@OPTIMIZERS.register('adam')
def _adam(cfg, lr, decay_mask):
  """Coupled L2 (added to the gradient), unlike adamw's decoupled decay."""
  return optax.chain(optax.add_decayed_weights(cfg.get('weight_decay', 0.0), decay_mask),
                     optax.adam(lr))


@OPTIMIZERS.register('adamw')
def _adamw(cfg, lr, decay_mask):
  return optax.adamw(lr, weight_decay=cfg.get('weight_decay', 0.0), mask=decay_mask)


@OPTIMIZERS.register('lars')
def _lars(cfg, lr, decay_mask):
  return optax.lars(lr, weight_decay=cfg.get('weight_decay', 0.0), weight_decay_mask=decay_mask,
                    trust_ratio_mask=decay_mask, momentum=cfg.get('momentum', 0.9))


def scaled_lr(cfg, batch_size=None):
  """The peak lr after the batch-size rule (Goyal et al. 2017; SimCLR uses both).

  cfg.lr_scaling: None/'' (lr as given), 'linear' (lr * B / base_batch_size) or
  'sqrt' (lr * sqrt(B / base_batch_size)); B is the global batch size.
  """
  rule = cfg.get('lr_scaling') or ''
  if not rule:
    return cfg.lr
  if batch_size is None:
    raise ValueError('lr_scaling needs the global batch size')
  ratio = batch_size / cfg.get('base_batch_size', 256)
  if rule == 'linear':
    return cfg.lr * ratio
  if rule == 'sqrt':
    return cfg.lr * ratio**0.5
  raise ValueError(f'unknown lr_scaling {rule!r}; use linear, sqrt or none')


def schedule(cfg, total_steps, batch_size=None, static=False):
  """cfg: lr, schedule (a name in SCHEDULES), warmup_steps -> optax schedule.

  static: the peak lr at every step, no warmup (cfg's schedule ignored).
  """
  lr, warmup = scaled_lr(cfg, batch_size), cfg.get('warmup_steps', 0)
  if static:
    return optax.constant_schedule(lr)
  main = SCHEDULES.get(cfg.get('schedule', 'cosine'))(lr, total_steps, warmup)
  if warmup:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
  return main


def optimizer(cfg, total_steps, batch_size=None):
  """`base_optimizer`, with `cfg.unscheduled` (full-match regexes over `/`-joined
  parameter paths, e.g. `('predictor/.*',)`): the leaves they match train at the peak lr
  from the first step to the last, no warmup or decay (SimSiam's fixed predictor lr,
  Chen & He 2021 section 4.2; solo-learn's `static_lr`), the others on the schedule.

  The labels are computed from the tree the optimizer is initialised on, so this composes
  with `tlu.transfer.freeze.masked_optimizer`. With patterns, each group has its own
  optimizer state, so `grad_clip_norm` clips each group's gradient apart.
  """
  patterns = tuple(cfg.get('unscheduled', ()))
  if not patterns:
    return base_optimizer(cfg, total_steps, batch_size)
  labels = lambda tree: map_with_paths(
      lambda path, _: 'static' if match_any(path, patterns) else 'scheduled', tree)
  return optax.multi_transform(
      {'scheduled': base_optimizer(cfg, total_steps, batch_size),
       'static': base_optimizer(cfg, total_steps, batch_size, static=True)}, labels)


def check_unscheduled(cfg, params):
  """A ValueError unless every `cfg.unscheduled` regex matches some parameter path."""
  paths = list(flatten(params))
  for pattern in cfg.get('unscheduled', ()):
    try:
      matched = isinstance(pattern, str) and any(match_any(p, pattern) for p in paths)
    except re.error:
      matched = False
    if not matched:
      raise ValueError(f'optimizer.unscheduled entry {pattern!r} matches no parameter path '
                       f'(e.g. {paths[0]!r})')


def base_optimizer(cfg, total_steps, batch_size=None, static=False):
  """cfg: name (a name in OPTIMIZERS: sgd, adam, adamw, lars), lr, weight_decay, momentum, schedule, warmup_steps.

  Optional: lr_scaling/base_batch_size (see scaled_lr), grad_clip_norm, and
  grad_accum_steps: average gradients over that many micro-batches per update
  (optax.MultiSteps). `total_steps` and `batch_size` are the loop's (micro-batch)
  steps and global batch; the schedule runs over updates and scales the lr by the
  effective batch, batch_size * grad_accum_steps. static: the peak lr throughout.
  """
  accum = cfg.get('grad_accum_steps', 1)
  lr = schedule(cfg, max(total_steps // accum, 1), batch_size and batch_size * accum, static)
  # Decay only kernels (not biases or BatchNorm scales), as SimCLR/big_vision do.
  tx = OPTIMIZERS.get(cfg.name)(cfg, lr, _kernels)
  clip = cfg.get('grad_clip_norm', 0.0)
  if clip:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  return optax.MultiSteps(tx, every_k_schedule=accum) if accum > 1 else tx


def _kernels(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], 'key', None) == 'kernel', params)
