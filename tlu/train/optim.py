"""Optimizers and learning-rate schedules from config, all optax."""

import jax
import optax


def schedule(cfg, total_steps):
  """cfg: lr, schedule ('constant'|'cosine'|'step'), warmup_steps -> optax schedule."""
  lr, warmup = cfg.lr, cfg.get('warmup_steps', 0)
  name = cfg.get('schedule', 'cosine')
  if name == 'constant':
    main = optax.constant_schedule(lr)
  elif name == 'cosine':
    main = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
  elif name == 'step':
    main = optax.piecewise_constant_schedule(
        lr, {int(total_steps * f) - warmup: 0.1 for f in (0.5, 0.75)})
  else:
    raise ValueError(f'unknown schedule {name!r}; use constant, cosine or step')
  if warmup:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
  return main


def base_optimizer(cfg, total_steps):
  """cfg: name ('sgd'|'adam'|'adamw'|'lars'), lr, weight_decay, momentum, schedule, warmup_steps."""
  lr = schedule(cfg, total_steps)
  name, wd = cfg.name, cfg.get('weight_decay', 0.0)
  # Decay only kernels (not biases or BatchNorm scales), as SimCLR/big_vision do.
  decay_mask = _kernels
  if name == 'sgd':
    tx = optax.chain(optax.add_decayed_weights(wd, decay_mask),
                     optax.sgd(lr, momentum=cfg.get('momentum', 0.9), nesterov=True))
  elif name == 'adam':
    tx = optax.adam(lr)
  elif name == 'adamw':
    tx = optax.adamw(lr, weight_decay=wd, mask=decay_mask)
  elif name == 'lars':
    tx = optax.lars(lr, weight_decay=wd, weight_decay_mask=decay_mask,
                    trust_ratio_mask=decay_mask, momentum=cfg.get('momentum', 0.9))
  else:
    raise ValueError(f'unknown optimizer {name!r}; use sgd, adam, adamw or lars')
  clip = cfg.get('grad_clip_norm', 0.0)
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx


def _kernels(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], 'key', None) == 'kernel', params)
