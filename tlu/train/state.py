"""The train state: everything a resumed run needs, and nothing else."""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
  """step: int32 scalar; params/batch_stats: nested dicts; rng: raw uint32 key data (2,);
  extra: the method's own state (EMA target, queue, centre, pseudo-labels; a pytree of
  arrays, {} for none), checkpointed with the rest so a resumed run is exact."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  extra: Any = flax.struct.field(default_factory=dict)

  @classmethod
  def create(cls, variables, tx, seed, extra=None):
    params = variables['params']
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params),
               rng=jax.random.key_data(jax.random.key(seed)), extra=extra or {})

  @property
  def variables(self):
    return {'params': self.params, 'batch_stats': self.batch_stats}

  def step_key(self):
    """A fresh key per step, a pure function of (seed, step): resume-exact."""
    return jax.random.fold_in(jax.random.wrap_key_data(self.rng), self.step)
