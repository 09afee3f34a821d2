"""The method contract: run facts in the compile key, the typed loss output, batch layouts
as data, and update phases with their own optimizer states (tlu/methods/base.py).

Each test drives a small method written here through the house's train step (and the
Trainer where the compile cache is the point), against values derived by hand.
"""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import methods_check
from tlu.methods import METHODS, layouts
from tlu.methods.base import Method
from tlu.methods.facts import RunFacts
from tlu.methods.output import LossOutput
from tlu.methods.phases import Phase, PhaseOptimizers
from tlu.methods.supervised import Supervised
from tlu.models import build_model, heads as heads_lib
from tlu.train import loop, mesh as mesh_lib, session, task
from tlu.train.state import TrainState
from tlu.train.step import make_train_step

MESH = mesh_lib.make_mesh(jax.devices()[:1])


def _source(n, seed=0):
  rng = np.random.default_rng(seed)
  return methods_check.Source(rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8),
                              rng.integers(0, 3, n))


def _setup(method_cls, facts, model_cfg=None, config=None, tx=None):
  config = ml_collections.ConfigDict(config or {})
  model = build_model(model_cfg or {'name': 'mlp', 'widths': (8,), 'features': 4},
                      method_cls.heads(config, 3))
  method = method_cls(config, model, facts)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  tx = tx or optax.sgd(0.1)
  state = TrainState.create(variables, tx, 0, method.init_extra(variables, jax.random.key(1)))
  return method, state, make_train_step(method, tx, MESH)


# ---------------------------------------------------------------- run facts in the compile key

class EpochReader(Supervised):
  """Supervised, logging the steps per epoch it was told (a schedule would read them so)."""

  def loss_fn(self, params, model_state, batch, rng):
    out = super().loss_fn(params, model_state, batch, rng)
    return out.replace(metrics={**out.metrics,
                                'epoch_steps': jnp.float32(self.facts.epoch_steps)})


def test_one_trainer_gives_each_cell_its_own_facts(tmp_path, monkeypatch):
  monkeypatch.setitem(METHODS._entries, 'epoch_reader', EpochReader)   # pylint: disable=protected-access
  trainer = task.Trainer(MESH)
  cfg = methods_check.config('supervised')
  cfg.method.name, cfg.steps = 'epoch_reader', 2
  seen = {}
  for n in (16, 32):   # batch 8: 2 and 4 steps per epoch, the same config otherwise
    splits = task.Splits(train=_source(n), test=_source(8), num_classes=3, image_shape=(8, 8, 1))
    logged = []
    trainer.run(cfg, str(tmp_path / str(n)), splits, on_log=lambda s, m: logged.append(m))
    seen[n] = [m['epoch_steps'] for m in logged]
  assert seen == {16: [2.0, 2.0], 32: [4.0, 4.0]}


# ---------------------------------------------------------------- the typed loss output

class DropsStatistics(Supervised):
  """Runs BatchNorm in training mode and returns no statistics: an error."""
  name = 'drops_statistics'

  def loss_fn(self, params, model_state, batch, rng):
    return super().loss_fn(params, model_state, batch, rng).replace(batch_stats={})


class ReturnsTuple(Supervised):
  def loss_fn(self, params, model_state, batch, rng):
    out = super().loss_fn(params, model_state, batch, rng)
    return out.loss, {'batch_stats': out.batch_stats}


BN_MODEL = {'name': 'cnn', 'widths': (4,), 'features': 8, 'use_bn': True}


def _one_step(method_cls):
  _, state, step = _setup(method_cls, RunFacts(num_steps=2, batch_size=4), BN_MODEL)
  batch = {'image': np.zeros((4, 8, 8, 1), np.uint8), 'label': np.arange(4) % 3}
  return state, step(state, batch)


def test_a_method_that_drops_batchnorm_statistics_is_an_error():
  with pytest.raises(ValueError, match="'drops_statistics'.*batch_stats must be the updated"):
    _one_step(DropsStatistics)
  with pytest.raises(TypeError, match='must return a tlu.methods.output.LossOutput'):
    _one_step(ReturnsTuple)
  state, (new, _) = _one_step(Supervised)   # the right one: statistics move, same tree
  assert jax.tree.structure(new.batch_stats) == jax.tree.structure(state.batch_stats)


# ---------------------------------------------------------------- batch layouts as data

class CountsUnlabelled(Method):
  """'labelled_unlabelled' at ratio 3; per-example state: how often each unlabelled
  example was drawn (indexed by 'unlabelled_index'), checkpointed in extra."""
  inputs = 'labelled_unlabelled'
  unlabelled_ratio = 3

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def init_extra(self, variables, rng):
    return {'draws': jnp.zeros((self.facts.num_unlabelled,), jnp.int32)}

  def loss_fn(self, params, model_state, batch, rng):
    out, stats = self.forward(params, model_state, self.images(batch, rng), ('head',))
    loss = optax.softmax_cross_entropy_with_integer_labels(out['head'], batch['label']).mean()
    draws = model_state['extra']['draws'].at[batch['unlabelled_index']].add(1)
    return LossOutput(loss=loss, batch_stats=stats, extra={'draws': draws})


def test_every_layout_gives_its_declared_keys():
  splits = task.Splits(train=_source(8), target=_source(8, 1), num_classes=3,
                       image_shape=(8, 8, 1))
  for name, layout in layouts.LAYOUTS.items():
    method = type('M', (Method,), {'inputs': name})(None, None, RunFacts(num_steps=1,
                                                                         batch_size=4))
    batch = next(iter(method.batches(splits, seed=0)))
    assert sorted(batch) == sorted(layout.keys), name
    assert batch['image'].shape == (4, 8, 8, 1), name


def test_labelled_unlabelled_layout_feeds_per_example_state():
  labelled, unlabelled = _source(6), _source(10, 1)
  splits = task.Splits(train=labelled, num_classes=3, image_shape=(8, 8, 1))
  splits.unlabelled = unlabelled   # a run with its own unlabelled split
  facts = RunFacts(num_steps=5, batch_size=2, num_examples=6, num_unlabelled=10)
  method, state, step = _setup(CountsUnlabelled, facts)
  draws = np.zeros(10, np.int64)
  for batch in itertools.islice(method.batches(splits, seed=0), 5):
    assert batch['unlabelled_image'].shape == (6, 8, 8, 1)   # 3 x the labelled 2
    np.testing.assert_array_equal(batch['unlabelled_image'],
                                  unlabelled.images[batch['unlabelled_index']])
    assert {tuple(x.ravel()) for x in batch['image']} <= {tuple(x.ravel())
                                                         for x in labelled.images}
    np.add.at(draws, batch['unlabelled_index'], 1)
    state, _ = step(state, batch)
  assert draws.sum() == 30 and draws.max() - draws.min() <= 1   # epochs of 10: even draws
  np.testing.assert_array_equal(state.extra['draws'], draws)


# ---------------------------------------------------------------- update phases

class TwoPhases(Method):
  """Phase 'a' moves the head towards 1, phase 'b' the backbone towards 2; each loss also
  depends on the other subtree, which must not move in that phase."""
  inputs = 'labelled'
  phases = (Phase('a', ('head',), 'loss_a'), Phase('b', ('backbone',), 'loss_b'))

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  @staticmethod
  def _half_sq(tree, shift):
    return sum(0.5 * jnp.sum((x - shift) ** 2) for x in jax.tree.leaves(tree))

  def loss_a(self, params, model_state, batch, rng):
    loss = self._half_sq(params['head'], 1.0) + self._half_sq(params['backbone'], 0.0)
    return LossOutput(loss=loss, batch_stats=model_state['batch_stats'])

  def loss_b(self, params, model_state, batch, rng):
    loss = self._half_sq(params['backbone'], 2.0) + self._half_sq(params['head'], 0.0)
    return LossOutput(loss=loss, batch_stats=model_state['batch_stats'])


LR, MU = 0.1, 0.9


def _sgd_by_hand(x, shift, steps):
  """SGD with momentum on 0.5 ||x - shift||^2: m <- (x - shift) + MU m, x <- x - LR m."""
  m = np.zeros_like(x)
  for _ in range(steps):
    m = (x - shift) + MU * m
    x = x - LR * m
  return x, m


def _phase_run(tmp, stop_after=None):
  splits = task.Splits(train=_source(8), num_classes=3, image_shape=(8, 8, 1))
  model = build_model({'name': 'mlp', 'widths': (8,), 'features': 4},
                      TwoPhases.heads(None, 3))
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  tx = PhaseOptimizers(TwoPhases.phases, lambda p: optax.sgd(LR, MU), variables['params'])
  method = TwoPhases(None, model, RunFacts(num_steps=3, batch_size=4))
  state = TrainState.create(variables, tx, 0)
  calls = itertools.count()
  options = loop.Options(num_steps=3, log_every=1, checkpoint_every=1, progress=False,
                         should_stop=lambda: stop_after is not None and next(calls) >= stop_after)
  out, _, _ = session.fit(tmp, state, make_train_step(method, tx, MESH),
                          method.batches(splits, seed=0), MESH, options)
  return variables['params'], jax.device_get(out)


def test_each_phase_moves_only_its_subtrees_with_its_own_optimizer_state(tmp_path):
  start, state = _phase_run(str(tmp_path / 'straight'))
  assert set(state.opt_state) == {'a', 'b'}
  for name, subtree, shift in (('a', 'head', 1.0), ('b', 'backbone', 2.0)):
    (trace,) = [s for s in state.opt_state[name] if hasattr(s, 'trace')]
    assert set(trace.trace) == {subtree}   # the phase's state holds its subtree alone
    for x0, x, m in zip(jax.tree.leaves(start[subtree]), jax.tree.leaves(state.params[subtree]),
                        jax.tree.leaves(trace.trace)):
      want_x, want_m = _sgd_by_hand(np.asarray(x0, np.float64), shift, 3)
      np.testing.assert_allclose(x, want_x, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(m, want_m, rtol=1e-5, atol=1e-6)
  # a stopped and resumed run ends bit for bit where the straight one does
  _, stopped = _phase_run(str(tmp_path / 'resumed'), stop_after=1)
  assert int(stopped.step) < 3
  _, resumed = _phase_run(str(tmp_path / 'resumed'))
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- momentum targets honour mode

@pytest.mark.parametrize('name', ['byol', 'mocov3', 'dino'])
def test_frozen_batchnorm_reaches_the_momentum_target(name):
  cls = METHODS.get(name)
  config = ml_collections.ConfigDict(cls.example_config())
  model = build_model(BN_MODEL, cls.heads(config, 3))
  method = cls(config, model, RunFacts(num_steps=4, batch_size=4, frozen=('backbone/.*',)),
               augment=lambda key, x: x)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, jax.random.key(1))
  model_state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(0), 'extra': extra}
  images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  out = jax.jit(method.loss_fn)(variables['params'], model_state, {'image': images},
                                jax.random.key(2))
  before, after = extra['target']['batch_stats'], out.extra['target']['batch_stats']
  for a, b in zip(jax.tree.leaves(before['backbone']), jax.tree.leaves(after['backbone'])):
    np.testing.assert_array_equal(a, b)   # frozen: the running statistics stay
  moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before['projector']),
                                                jax.tree.leaves(after['projector']))]
  assert any(moved)   # the heads' BatchNorm layers still train
