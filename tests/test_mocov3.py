"""MoCo v3 against a numpy transcription of the paper's Algorithm 1, and its momentum encoder."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.methods.facts import RunFacts
from tlu.methods.mocov3 import MoCoV3
from tlu.models import build_model
from tlu.train.state import TrainState
from tlu.unsupervised.contrastive import info_nce
from tlu.unsupervised.momentum import cosine_momentum, ema_update


def _ctr(q, k, tau):
  """Algorithm 1's ctr(q, k): normalise, logits = q k^T / tau, CE to the diagonal, times 2 tau."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  k = k / np.linalg.norm(k, axis=1, keepdims=True)
  logits = q @ k.T / tau
  logits -= logits.max(1, keepdims=True)
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  return 2 * tau * -np.mean(np.diag(log_p))


def test_info_nce_matches_algorithm_1():
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  loss, aux = info_nce(jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32), 0.2)
  np.testing.assert_allclose(float(loss), _ctr(q, k, 0.2), rtol=1e-5)
  qn, kn = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (q, k))
  assert float(aux['contrastive_accuracy']) == np.mean(np.argmax(qn @ kn.T, 1) == np.arange(6))


def test_cosine_momentum_hand_values():
  # m_k = 1 - (1 - m0) (cos(pi k / K) + 1) / 2
  np.testing.assert_allclose(float(cosine_momentum(0, 100, 0.99)), 0.99, rtol=1e-7)
  np.testing.assert_allclose(float(cosine_momentum(50, 100, 0.99)), 0.995, rtol=1e-7)
  np.testing.assert_allclose(float(cosine_momentum(100, 100, 0.99)), 1.0, rtol=1e-7)
  np.testing.assert_allclose(float(cosine_momentum(25, 100, 0.9)),
                             1 - 0.1 * (np.cos(np.pi / 4) + 1) / 2, rtol=1e-6)


def test_ema_update_is_m_target_plus_one_minus_m_online():
  target = {'a': jnp.array([1.0, 2.0]), 'b': {'c': jnp.array(3.0)}}
  online = {'a': jnp.array([3.0, -2.0]), 'b': {'c': jnp.array(1.0)}}
  out = ema_update(target, online, 0.75)
  np.testing.assert_allclose(out['a'], [1.5, 1.0])
  np.testing.assert_allclose(out['b']['c'], 2.5)


class _TwoViews:
  """Two known, distinct views of a batch: the images and their negatives (1 - x). A query
  paired with the key of its own view would give another loss."""
  num_global = 2

  def views(self, key, images):
    del key
    return [images, 1.0 - images]


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(MoCoV3.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16},
                      MoCoV3.heads(config, 10))
  return MoCoV3(config, model, RunFacts(num_steps=10, batch_size=4, epoch_steps=1, num_examples=4),
                augment=_TwoViews())


def test_loss_is_symmetrised_ctr_of_online_queries_and_momentum_keys(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  # A momentum encoder that differs from the online one, as after some steps.
  extra['target']['params'] = jax.tree.map(lambda x: x * 0.9, extra['target']['params'])
  images = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': extra}
  batch, key = {'image': images}, jax.random.key(1)
  # The loss, and its gradients with respect to the online parameters and to the momentum
  # encoder's (which must be zero: keys are constants of the loss), in one compile.
  grad = jax.jit(jax.value_and_grad(
      lambda p, target_params: method.objective(
          p, {**model_state, 'extra': {'target': {**extra['target'], 'params': target_params}}},
          batch, key), argnums=(0, 1), has_aux=True))
  (loss, aux), (grads, target_grads) = grad(variables['params'], extra['target']['params'])
  x = images.astype(np.float32) / 255
  x = jnp.asarray(np.concatenate([x, 1.0 - x]))   # the two views, in order
  q = method.model.apply(variables, x, train=True, heads=('projector', 'predictor'),
                         mutable=['batch_stats'])[0]['predictor']
  k = method.model.apply(extra['target'], x, train=True, heads=('projector',),
                         mutable=['batch_stats'])[0]['projector']
  q, k = np.asarray(q, np.float64), np.asarray(k, np.float64)
  want = _ctr(q[:4], k[4:], 0.2) + _ctr(q[4:], k[:4], 0.2)
  unpaired = _ctr(q[:4], k[:4], 0.2) + _ctr(q[4:], k[4:], 0.2)   # each query with its own view
  assert abs(want - unpaired) > 1e-2 * abs(want), 'the views must tell the pairings apart'
  np.testing.assert_allclose(float(loss), want, rtol=1e-4)
  # No gradient flows into the momentum encoder (values, leaf by leaf), while every online
  # block, the predictor included, gets one.
  for leaf in jax.tree.leaves(target_grads):
    np.testing.assert_array_equal(leaf, 0.0)
  assert set(grads) == {'backbone', 'projector', 'predictor'}
  for block, tree in grads.items():
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(tree)), block
  # The target's statistics moved (train-mode BN).
  assert not np.allclose(aux.extra['target']['batch_stats']['projector']['bn0']['mean'],
                         extra['target']['batch_stats']['projector']['bn0']['mean'])


def test_after_update_moves_the_target_toward_the_online_encoder(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  assert set(extra['target']['params']) == {'backbone', 'projector'}  # not the predictor
  online = jax.tree.map(lambda x: x + 1.0, variables['params'])
  state = TrainState(step=jnp.int32(5), params=online, batch_stats=variables['batch_stats'],
                     opt_state=(), rng=jnp.zeros(2, jnp.uint32), extra=extra)
  new = method.after_update(state)
  m = 1 - 0.01 * (np.cos(np.pi * 5 / 10) + 1) / 2
  old_leaves = jax.tree.leaves(extra['target']['params'])
  new_leaves = jax.tree.leaves(new.extra['target']['params'])
  online_leaves = jax.tree.leaves({k: online[k] for k in ('backbone', 'projector')})
  for o, n, on in zip(old_leaves, new_leaves, online_leaves):
    np.testing.assert_allclose(n, m * np.asarray(o) + (1 - m) * np.asarray(on), rtol=1e-6,
                               atol=1e-7)
