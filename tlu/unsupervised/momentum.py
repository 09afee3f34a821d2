"""Momentum (EMA) target networks: the update and the cosine momentum schedule.

Used by BYOL (Grill et al. 2020, eq. 1 and section 3.2), MoCo v3 and DINO: the target
is an exponential moving average of the online network,
  xi <- m xi + (1 - m) theta,
with m raised from its base value to 1 over training by a cosine schedule.
"""

import jax
import jax.numpy as jnp


def ema_update(target, online, momentum):
  """xi <- m xi + (1 - m) theta, leaf by leaf; `target` and `online` share a structure."""
  return jax.tree.map(lambda t, o: momentum * t + (1.0 - momentum) * o, target, online)


def cosine_momentum(step, total_steps, base):
  """BYOL's schedule: m_k = 1 - (1 - m_base) (cos(pi k / K) + 1) / 2, k = step, K = total_steps.

  m_0 = base, m_K = 1. `step` may be a traced int.
  """
  progress = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0
