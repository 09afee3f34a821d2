"""Optimizer options: batch-size lr scaling and gradient accumulation, against hand-derived values."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

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


def _sgd_updates(tx, params, grads, steps):
  state, out = tx.init(params), []
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    out.append(updates)
  return out


def test_unscheduled_leaves_train_at_the_peak_lr_and_the_rest_on_the_schedule():
  # Plain SGD (momentum 0): update_t = -lr_t * g. Warmup 2 then cosine over 8 steps for the
  # backbone, 0.1 at every step for the predictor (SimSiam's fixed predictor lr).
  cfg = _cfg(schedule='cosine', warmup_steps=2, unscheduled=('predictor/.*',))
  params = {'backbone': {'kernel': jnp.zeros(2)}, 'predictor': {'dense0': {'kernel': jnp.zeros(2)}}}
  grads = {'backbone': {'kernel': jnp.ones(2)}, 'predictor': {'dense0': {'kernel': jnp.ones(2)}}}
  updates = _sgd_updates(optim.optimizer(cfg, total_steps=10), params, grads, 6)
  lr = [0.0, 0.05] + [0.1 * 0.5 * (1 + np.cos(np.pi * t / 8)) for t in range(4)]
  for t, u in enumerate(updates):
    np.testing.assert_allclose(u['backbone']['kernel'], -lr[t], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(u['predictor']['dense0']['kernel'], -0.1, rtol=1e-6)


def test_unscheduled_composes_with_a_frozen_group():
  from tlu.transfer import freeze
  cfg = _cfg(schedule='cosine', warmup_steps=2, unscheduled=('predictor/.*',))
  params = {'backbone': {'kernel': jnp.zeros(2)}, 'predictor': {'kernel': jnp.zeros(2)},
            'head': {'kernel': jnp.zeros(2)}}
  grads = jax.tree.map(jnp.ones_like, params)
  tx = freeze.masked_optimizer(lambda: optim.optimizer(cfg, total_steps=10), params,
                               (('backbone/.*', None),))
  u = _sgd_updates(tx, params, grads, 2)[1]
  np.testing.assert_array_equal(u['backbone']['kernel'], 0.0)
  np.testing.assert_allclose(u['predictor']['kernel'], -0.1, rtol=1e-6)
  np.testing.assert_allclose(u['head']['kernel'], -0.05, rtol=1e-6)   # warmup step 1


def test_an_unscheduled_pattern_that_matches_nothing_is_refused():
  params = {'backbone': {'kernel': jnp.zeros(2)}}
  optim.check_unscheduled(_cfg(unscheduled=('backbone/.*',)), params)
  for bad in ('predictor/.*', '(', 3):
    with pytest.raises(ValueError, match='optimizer.unscheduled'):
      optim.check_unscheduled(_cfg(unscheduled=(bad,)), params)


def test_fixmatch_cosine_is_lr_cos_7_pi_k_over_16_k_after_the_warmup():
  sched = optim.schedule(_cfg(schedule='fixmatch_cosine', warmup_steps=10), total_steps=110)
  np.testing.assert_allclose(float(sched(5)), 0.05, rtol=1e-6)   # linear warmup to lr 0.1
  for k in (0, 25, 50, 100):   # K = 100 steps after the warmup
    np.testing.assert_allclose(float(sched(10 + k)), 0.1 * np.cos(7 * np.pi * k / 1600),
                               rtol=1e-5)
  np.testing.assert_allclose(float(sched(110)), 0.1 * 0.19509032, rtol=1e-5)  # cos(7 pi / 16)
