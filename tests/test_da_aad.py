"""AaD against a numpy transcription of its reference code (AaD_SFDA tar_adaptation.py),
its memory banks, and source-free data: it never reads the source."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import da_reference as ref
import methods_check
from tlu.adapt import cells
from tlu.methods import aad as aad_lib, dan as dan_lib
from tlu.train import mesh as mesh_lib, task
from tlu.train.state import TrainState
from method_block import check_block

N, K = 12, 3


def _banks(rng, features_dim=6, num_classes=3):
  f = rng.normal(size=(N, features_dim))
  return f / np.linalg.norm(f, axis=1, keepdims=True), ref.softmax(rng.normal(size=(N, 3)) * 2)


@pytest.mark.parametrize('step', [0, 7])
def test_aad_loss_and_banks_match_the_reference_iteration(step):
  method, variables = ref.make_method(aad_lib.AaD, num_examples=N, k=K, alpha=1.0, beta=0.75)
  rng = np.random.default_rng(step)
  fea_bank, score_bank = _banks(rng)
  index = np.array([5, 0, 9, 2])
  batch = {'image': rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8), 'index': index}
  state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(step),
           'extra': {'features': jnp.asarray(fea_bank, jnp.float32),
                     'scores': jnp.asarray(score_bank, jnp.float32)}}
  loss, aux = jax.jit(method.objective)(variables['params'], state, batch, None)

  out, stats = method.model.apply(variables, jnp.asarray(batch['image'], jnp.float32) / 255,
                                  train=True, heads=('head',), mutable=['batch_stats'])
  features = np.asarray(out['features'], np.float64)
  softmax_out = ref.softmax(np.asarray(out['head'], np.float64))
  alpha = ref.aad_alpha(step, 10, 1.0, 0.75)
  want, want_fea, want_score = ref.aad_step(fea_bank, score_bank, features, softmax_out,
                                            index, K, alpha)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(float(aux.metrics['alpha']), alpha, rtol=1e-6)
  np.testing.assert_allclose(aux.extra['features'], want_fea, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux.extra['scores'], want_score, rtol=1e-5, atol=1e-6)
  for path, value in ref.flat(aux.batch_stats).items():
    np.testing.assert_allclose(value, ref.flat(stats['batch_stats'])[path], rtol=1e-5, atol=1e-6)


def test_neighbours_exclude_the_example_itself():
  bank = jnp.eye(5)
  bank = bank.at[1].set(jnp.array([0.9, 0.1, 0, 0, 0]) / jnp.linalg.norm(jnp.array([0.9, 0.1])))
  near = aad_lib.neighbours(bank[:1], bank, 1)   # row 0's nearest other row is row 1
  np.testing.assert_array_equal(near, [[1]])


def test_attraction_gradient_is_minus_the_neighbour_scores():
  """The reference's KL form equals the dot product up to a term without gradient."""
  rng = np.random.default_rng(1)
  p = jnp.asarray(ref.softmax(rng.normal(size=(4, 3))), jnp.float32)
  s = jnp.asarray(ref.softmax(rng.normal(size=(4 * K, 3))).reshape(4, K, 3), jnp.float32)
  grad = jax.grad(lambda q: aad_lib.attract_disperse(q, s, 0.0)[0])(p)
  np.testing.assert_allclose(grad, -np.asarray(s).sum(1) / 4, rtol=1e-5, atol=1e-7)


class _Host:
  def __init__(self, features, mesh):
    self.features_, self.mesh = features, mesh

  def features(self, state, split):
    assert split == 'train'
    return self.features_, np.full(len(self.features_), -1)


def test_host_update_fills_the_banks_from_the_current_model():
  method, variables = ref.make_method(aad_lib.AaD, num_examples=N, k=K)
  state = TrainState.create(variables, optax.sgd(0.1), 0,
                            method.init_extra(variables, jax.random.key(0)))
  assert state.extra['features'].shape == (N, 6) and state.extra['scores'].shape == (N, 3)
  features = np.random.default_rng(2).normal(size=(N, 6)).astype(np.float32)
  host = _Host(features, mesh_lib.make_mesh(jax.devices()[:1]))
  state, logs = method.host_update(state, host)
  assert logs == {}
  k, b = (np.asarray(variables['params']['head'][n], np.float64) for n in ('kernel', 'bias'))
  np.testing.assert_allclose(state.extra['features'],
                             features / np.linalg.norm(features, axis=1, keepdims=True),
                             rtol=1e-5)
  np.testing.assert_allclose(state.extra['scores'], ref.softmax(features @ k + b), rtol=1e-5,
                             atol=1e-7)


# ----------------------------------------------------------------------------- source-free


class _NoSource:
  """A source split that fails the test on any use."""

  def __getattr__(self, name):
    raise AssertionError(f'the source was read ({name})')

  def __len__(self):
    raise AssertionError('the source was read (len)')

  def __getitem__(self, i):
    raise AssertionError(f'the source was read (example {i})')


class _Recording(methods_check.Source):
  """A target split that records the keys its examples are read for."""

  def __init__(self, images, labels):
    super().__init__(images, labels)
    self.keys_read = set()

  def __getitem__(self, i):
    example = super().__getitem__(i)
    return _Reads(example, self.keys_read)


class _Reads(dict):
  def __init__(self, example, log):
    super().__init__(example)
    self._log = log

  def __getitem__(self, key):
    self._log.add(key)
    return super().__getitem__(key)


def _adapt_data(target):
  data = cells.AdaptData.__new__(cells.AdaptData)   # without opening datasets
  data.source_splits = _NoSource()
  data.oracle_splits = task.Splits(train=target, test=target, num_classes=3,
                                   image_shape=(8, 8, 1))
  return data


def test_aad_trains_on_the_target_alone(tmp_path):
  rng = np.random.default_rng(3)
  target = _Recording(rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8),
                      rng.integers(0, 3, 16))
  data = _adapt_data(target)
  with pytest.raises(AssertionError, match='the source was read'):
    data.splits_for(dan_lib.DAN)                 # a paired method does read it
  splits = data.splits_for(aad_lib.AaD)
  assert splits.target is None and splits.train is target
  assert not any(isinstance(v, _NoSource) for v in vars(splits).values())

  cfg = methods_check.config('aad')
  cfg.evals = {}
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  # Only the loop's own reads count: the host hook's feature extraction is allowed labels
  # (diagnostics, as SHOT's), the training batches are not.
  state, _, _ = trainer.run(cfg, str(tmp_path / 'aad'), splits)
  assert int(state.step) == 4 and 'image' in target.keys_read
  target.keys_read.clear()
  batches = aad_lib.AaD.batches(trainer.build(cfg, splits)[0], splits, seed=0)
  next(iter(batches))
  assert target.keys_read == {'image'}


def test_aad_checks_its_keys_and_the_target_size():
  for bad in ({'k': 0}, {'k': 1.5}, {'alpha': -1.0}, {'beta': -0.1}):
    config = ml_collections.ConfigDict({**aad_lib.AaD.example_config(), **bad})
    with pytest.raises(ValueError, match=f'method.{next(iter(bad))}'):
      check_block(aad_lib.AaD, config)
  method, variables = ref.make_method(aad_lib.AaD, num_examples=3, k=3)
  with pytest.raises(ValueError, match='k=3'):
    method.init_extra(variables, jax.random.key(0))
