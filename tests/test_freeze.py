"""Specification of `tlu.transfer.freeze`: masks, labels, masked optimizers, and that one
freezing spec also freezes BatchNorm statistics (`tlu.models.norm`, `tlu.train.task`)."""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from tlu.models.norm import BatchNorm, Mode, train_mode
from tlu.train import checkpoint, mesh as mesh_lib, task
from tlu.transfer.freeze import (freeze_mask, frozen_patterns, masked_optimizer, param_labels,
                                 unfreeze_schedule)
from tlu.transfer.paths import flatten, match_any

LR = 0.01


class _Backbone(nn.Module):

  @nn.compact
  def __call__(self, x, train):
    x = nn.Conv(4, (3, 3))(x)
    x = BatchNorm(momentum=0.5)(x, train)
    return nn.Dense(6)(nn.relu(x).mean(axis=(1, 2)))


class _Net(nn.Module):

  @nn.compact
  def __call__(self, x, train=Mode(True)):
    x = _Backbone(name='backbone')(x, train)
    return nn.Dense(3, name='head')(x)


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 6, 6, 1)).astype(np.float32) * 2 + 1
  y = rng.integers(0, 3, size=8)
  return x, y


@functools.cache
def _init():
  """Fresh variables of `_Net` (shared between tests, which never mutate them)."""
  return _Net().init(jax.random.key(0), _data()[0])


def _as_numpy(tree):
  return jax.tree.map(lambda a: np.array(a, copy=True), tree)


def _same_bits(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _train(variables, tx, frozen, steps):
  """`steps` SGD-style steps of cross-entropy; returns the final variables."""
  x, y = _data()
  params, stats = variables['params'], variables['batch_stats']
  opt_state = tx.init(params)

  def loss_fn(p, s):
    logits, updates = _Net().apply({'params': p, 'batch_stats': s}, x, train_mode(frozen),
                                   mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates

  @jax.jit
  def step(params, stats, opt_state):
    (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
    stats = updates['batch_stats']
    u, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, u), stats, opt_state

  for _ in range(steps):
    params, stats, opt_state = step(params, stats, opt_state)
  return {'params': params, 'batch_stats': stats}


def _random_like(tree, seed, low=0.5, high=1.0):
  """Random values with |x| in [low, high) and random signs, shaped like `tree`."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda a: (rng.uniform(low, high, np.shape(a)) * rng.choice([-1, 1], np.shape(a))
                ).astype(np.float32), tree)


def test_freeze_mask_full_matches_paths():
  params = _init()['params']
  mask = flatten(freeze_mask(params, ('backbone/.*', 'head/bias')))
  assert mask == {'backbone/Conv_0/kernel': True, 'backbone/Conv_0/bias': True,
                  'backbone/BatchNorm_0/scale': True, 'backbone/BatchNorm_0/bias': True,
                  'backbone/Dense_0/kernel': True, 'backbone/Dense_0/bias': True,
                  'head/kernel': False, 'head/bias': True}


def test_param_labels_first_match_wins_and_unmatched_trains_at_one():
  params = _init()['params']
  groups = (('backbone/Conv_0/.*', None), ('backbone/.*', 0.1), ('backbone/Conv_0/bias', 0.5))
  labels = flatten(param_labels(params, groups))
  assert labels == {'backbone/Conv_0/kernel': 'frozen', 'backbone/Conv_0/bias': 'frozen',
                    'backbone/BatchNorm_0/scale': 'lr*0.1', 'backbone/BatchNorm_0/bias': 'lr*0.1',
                    'backbone/Dense_0/kernel': 'lr*0.1', 'backbone/Dense_0/bias': 'lr*0.1',
                    'head/kernel': 'lr*1.0', 'head/bias': 'lr*1.0'}


def test_adamw_with_frozen_backbone_leaves_it_bit_for_bit_unchanged():
  variables = _init()
  before = _as_numpy(variables)
  groups = (('backbone/.*', None),)
  tx = masked_optimizer(lambda: optax.adamw(LR, weight_decay=0.5), variables['params'], groups)
  after = _train(variables, tx, frozen=('backbone/.*',), steps=3)
  for path, value in flatten(after['params']['backbone']).items():
    assert _same_bits(value, flatten(before['params']['backbone'])[path]), path
  for path, value in flatten(after['batch_stats']).items():
    assert _same_bits(value, flatten(before['batch_stats'])[path]), path
  assert not np.allclose(after['params']['head']['kernel'], before['params']['head']['kernel'])


def test_without_freezing_the_same_training_moves_backbone_and_stats():
  # Control for the test above: its zero movement is due to the freezing.
  variables = _init()
  before = _as_numpy(variables)
  tx = masked_optimizer(lambda: optax.adamw(LR, weight_decay=0.5), variables['params'], ())
  after = _train(variables, tx, frozen=(), steps=3)
  for path, value in flatten(after['params']['backbone']).items():
    assert not np.allclose(value, flatten(before['params']['backbone'])[path]), path
  assert not np.allclose(after['batch_stats']['backbone']['BatchNorm_0']['mean'],
                         before['batch_stats']['backbone']['BatchNorm_0']['mean'])


def test_weight_decay_never_reaches_a_frozen_leaf():
  params = _init()['params']
  wd = 0.5
  tx = masked_optimizer(lambda: optax.adamw(LR, weight_decay=wd), params, (('backbone/.*', None),))
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  for path, u in flatten(updates['backbone']).items():
    assert not np.any(np.asarray(u)), path
  # With a zero gradient Adam's step is 0, so only decoupled decay -lr * wd * p is left.
  for path, u in flatten(updates['head']).items():
    np.testing.assert_allclose(u, -LR * wd * np.asarray(flatten(params['head'])[path]), rtol=1e-6)


def test_sgd_multiplier_scales_the_backbone_update_exactly():
  params = _init()['params']
  grads = _random_like(params, seed=1)
  sgd = lambda: optax.sgd(LR)
  slow = masked_optimizer(sgd, params, (('backbone/.*', 0.1),))
  plain = masked_optimizer(sgd, params, (('backbone/.*', 1.0),))
  u_slow, _ = slow.update(grads, slow.init(params), params)
  u_plain, _ = plain.update(grads, plain.init(params), params)
  for path, g in flatten(grads['backbone']).items():
    np.testing.assert_allclose(flatten(u_slow['backbone'])[path], -LR * 0.1 * g, rtol=1e-6)
  for path, g in flatten(grads['head']).items():
    np.testing.assert_array_equal(flatten(u_slow['head'])[path], -np.float32(LR) * g)
  norm = lambda t: float(optax.global_norm(t))
  assert norm(u_slow['backbone']) == pytest.approx(0.1 * norm(u_plain['backbone']), rel=1e-6)
  assert norm(u_slow['head']) == norm(u_plain['head'])


def test_adam_multiplier_moves_the_backbone_ten_times_less_than_the_head():
  params = _init()['params']
  grads = _random_like(params, seed=2)  # |g| >= 0.5 >> eps
  tx = masked_optimizer(lambda: optax.adam(LR), params, (('backbone/.*', 0.1),))
  state, new = tx.init(params), params
  steps = 3
  for _ in range(steps):  # a constant gradient: each Adam step is lr * sign(g)
    u, state = tx.update(grads, state, new)
    new = optax.apply_updates(new, u)
  moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)), new, params)
  for path, m in flatten(moved['backbone']).items():
    np.testing.assert_allclose(m, steps * 0.1 * LR, rtol=1e-3, err_msg=path)
  for path, m in flatten(moved['head']).items():
    np.testing.assert_allclose(m, steps * LR, rtol=1e-3, err_msg=path)


def test_unfreeze_schedule_names_the_frozen_patterns_per_step():
  schedule = unfreeze_schedule([(3, ('backbone/.*',)), (1, 'backbone/Conv_0/.*')])
  assert schedule(0) == ('backbone/Conv_0/.*', 'backbone/.*')
  frozen = schedule(2)  # Conv_0 unfroze at 1; the rest of the backbone waits for 3
  assert not match_any('backbone/Conv_0/kernel', frozen)
  assert match_any('backbone/Dense_0/kernel', frozen)
  assert not match_any('head/kernel', frozen)
  assert schedule(3) == ()
  assert schedule.unfreeze_step('backbone/Conv_0/kernel') == 1
  assert schedule.unfreeze_step('backbone/Dense_0/kernel') == 3
  assert schedule.unfreeze_step('head/kernel') == 0


def test_gradual_unfreezing_moves_leaves_from_their_stage_on_without_retracing():
  params = _init()['params']
  grads = _random_like(params, seed=3)
  schedule = unfreeze_schedule([(1, ('backbone/Conv_0/.*',)), (3, ('backbone/.*',))])
  tx = masked_optimizer(lambda: optax.sgd(LR), params, (('head/bias', None),), unfreeze=schedule)
  traces = []

  @jax.jit
  def update(state):
    traces.append(1)
    return tx.update(grads, state, params)

  state = tx.init(params)
  for step in range(5):
    u, state = update(state)
    for path, value in flatten(u).items():
      trains = path != 'head/bias' and not match_any(path, schedule(step))
      expected = -np.float32(LR) * flatten(grads)[path] if trains else np.zeros_like(value)
      np.testing.assert_array_equal(value, expected, err_msg=f'{path} at step {step}')
  assert len(traces) == 1
  assert schedule(0) and not schedule(3)  # the loop above crossed both stages


def test_batchnorm_is_frozen_where_the_spec_freezes_its_scale():
  # Only the layer whose `<path>/scale` a frozen regex matches keeps its statistics.
  variables = _init()
  x, _ = _data()
  frozen = frozen_patterns((('backbone/BatchNorm_0/.*', None), ('head/.*', 0.1)))
  _, kept = _Net().apply(variables, x, train_mode(frozen), mutable=['batch_stats'])
  _, moved = _Net().apply(variables, x, train_mode(('backbone/Conv_0/.*',)),
                          mutable=['batch_stats'])
  for path, value in flatten(variables['batch_stats']).items():
    assert _same_bits(flatten(kept['batch_stats'])[path], value), path
    assert not np.allclose(flatten(moved['batch_stats'])[path], value), path


def _task_config(freeze):
  return ml_collections.ConfigDict(dict(
      seed=0, method=dict(name='supervised'),
      model=dict(name='cnn', widths=(4, 8), features=16, use_bn=True), freeze=freeze,
      optimizer=dict(name='adamw', lr=0.05, weight_decay=0.5, schedule='constant'),
      steps=4, batch_size=8, eval_batch_size=8, augment='', evals={}, log_every=2,
      checkpoint_every=4, progress=False))


def _digits_splits():
  rng = np.random.default_rng(5)
  examples = [{'image': rng.integers(0, 256, (8, 8, 1), np.uint8), 'label': np.int64(i % 3)}
              for i in range(24)]
  return task.Splits(train=examples, num_classes=3, image_shape=(8, 8, 1))


def _source_like(fresh):
  """`fresh` with random BatchNorm statistics (a source's, not the init's 0 and 1)."""
  stats = _random_like(fresh['batch_stats'], seed=6, low=0.2, high=2.0)
  stats = jax.tree.map(np.abs, stats)   # variances must stay positive; means may be too
  return {'params': fresh['params'], 'batch_stats': stats}


@pytest.mark.parametrize('freeze, frozen', [((('backbone/.*', None),), True), ((), False)])
def test_trainer_with_frozen_backbone_keeps_its_params_and_statistics_bit_for_bit(
    tmp_path, freeze, frozen):
  # Through the house (task config -> Trainer -> jit step); the unfrozen run is the control.
  splits, cfg = _digits_splits(), _task_config(freeze)
  trainer = task.Trainer(mesh_lib.make_mesh())
  start = _as_numpy(_source_like(
      jax.device_get(trainer.init_state(cfg, splits).variables)))
  state, _, stopped = trainer.run(cfg, str(tmp_path), splits, init=lambda _: start)
  assert not stopped and int(state.step) == 4
  after = jax.device_get(state.variables)
  for collection in ('params', 'batch_stats'):
    for path, value in flatten(after[collection]['backbone']).items():
      before = flatten(start[collection]['backbone'])[path]
      assert _same_bits(value, before) if frozen else not np.allclose(value, before), \
          f'{collection}/backbone/{path}'
  assert not np.allclose(after['params']['head']['kernel'], start['params']['head']['kernel'])


def test_a_task_config_unfreezes_the_backbone_at_its_stage(tmp_path):
  # Through the house: `unfreeze` in a task config. With SGD at a constant lr the gate is
  # visible in the checkpoints: the backbone stays bit-equal for the 2 gated updates and
  # moves from the 3rd on; the head moves from the 1st.
  splits = _digits_splits()
  cfg = _task_config(())
  cfg.unfreeze = ((2, ('backbone/.*',)),)
  cfg.optimizer = ml_collections.ConfigDict(dict(name='sgd', lr=0.1, momentum=0.0,
                                                 weight_decay=0.0, schedule='constant'))
  cfg.checkpoint_every, cfg.keep_checkpoints = 1, 4
  task.check_task(cfg, splits)
  trainer = task.Trainer(mesh_lib.make_mesh())
  start = _as_numpy(jax.device_get(trainer.init_state(cfg, splits).variables))
  trainer.run(cfg, str(tmp_path), splits, init=lambda _: start)
  params = [flatten(start['params'])] + [
      flatten(checkpoint.restore_params(str(tmp_path / 'checkpoints'), s)[0]['params'])
      for s in (1, 2, 3, 4)]
  for path in params[0]:
    moved = [not _same_bits(params[s][path], params[s - 1][path]) for s in (1, 2, 3, 4)]
    assert moved == ([False, False, True, True] if path.startswith('backbone/')
                     else [True] * 4), path


@pytest.mark.parametrize('unfreeze, message', [
    (((1, ('backbone/nothing',)),), "unfreeze pattern 'backbone/nothing' matches no parameter"),
    (((4, ('backbone/.*',)),), 'use (step in [0, 4)'),
    (((1, 'backbone/.*'),), 'use (step in [0, 4)')])
def test_bad_unfreeze_stages_are_refused_before_compute(unfreeze, message):
  cfg = _task_config(())
  cfg.unfreeze = unfreeze
  with pytest.raises(ValueError, match=re.escape(message)):
    task.check_task(cfg, _digits_splits())


def test_the_gradual_strategy_hands_its_unfreeze_stages_to_its_task():
  from configs import digits_transfer  # pylint: disable=import-outside-toplevel
  from tlu.transfer import strategies  # pylint: disable=import-outside-toplevel
  config = digits_transfer.get_config('gradual')
  phase = strategies.phase_config(config, 'gradual', 0, model={'name': 'cnn'}, seed=0)
  assert phase.unfreeze == config.unfreeze and phase.freeze == ()
  assert 'unfreeze' not in strategies.phase_config(config, 'finetune', 0, model={}, seed=0)
  config.unfreeze = ()
  with pytest.raises(ValueError, match='strategy gradual needs unfreeze'):
    strategies.check(config, {c: 100 for c in range(5)})
