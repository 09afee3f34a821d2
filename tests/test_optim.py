"""Optimizer options: batch-size lr scaling and gradient accumulation, against hand-derived values."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from tlu.train import optim


def _cfg(**kw):
  base = dict(name='sgd', lr=0.1, momentum=0.0, weight_decay=0.0, schedule='constant',
              warmup_steps=0)
  return ml_collections.ConfigDict({**base, **kw})


def test_lr_scaling_rules():
  assert optim.scaled_lr(_cfg(lr_scaling='linear', base_batch_size=256), 1024) == 0.4
  np.testing.assert_allclose(optim.scaled_lr(_cfg(lr_scaling='sqrt', base_batch_size=256), 1024),
                             0.2)
  assert optim.scaled_lr(_cfg(), 1024) == 0.1


def test_gradient_accumulation_averages_micro_batches():
  # SGD without momentum, nesterov irrelevant at momentum 0: one update of -lr * mean(g1, g2).
  tx = optim.base_optimizer(_cfg(grad_accum_steps=2), total_steps=4)
  params = {'w': jnp.zeros(3)}
  state = tx.init(params)
  g1, g2 = {'w': jnp.array([1., 2., 3.])}, {'w': jnp.array([3., 2., 1.])}
  u1, state = tx.update(g1, state, params)
  np.testing.assert_array_equal(u1['w'], 0.0)  # no update after the first micro-batch
  params = optax.apply_updates(params, u1)
  u2, state = tx.update(g2, state, params)
  np.testing.assert_allclose(u2['w'], -0.1 * np.array([2., 2., 2.]), rtol=1e-6)


def test_warmup_then_cosine():
  sched = optim.schedule(_cfg(schedule='cosine', warmup_steps=10), total_steps=110)
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(float(sched(5)), 0.05, rtol=1e-6)
  np.testing.assert_allclose(float(sched(10)), 0.1, rtol=1e-6)
  np.testing.assert_allclose(float(sched(60)), 0.05, rtol=1e-5)  # half-way down the cosine
