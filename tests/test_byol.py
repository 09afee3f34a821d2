"""BYOL against a numpy transcription of the paper's eq. 2 and its symmetrisation, and its
target network (copy at start, EMA with the cosine momentum schedule)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.methods.byol import BYOL
from tlu.methods.facts import RunFacts
from tlu.models import build_model
from tlu.train.state import TrainState
from tlu.unsupervised.ssl_losses import normalized_mse
from method_block import check_block


def _eq_2(q, z):
  """L = mean over the batch of || q / ||q|| - z' / ||z'|| ||_2^2 (Grill et al. 2020, eq. 2)."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  return np.mean(np.sum((q - z) ** 2, axis=1))


def _tau(k, big_k, base):
  """Section 3.2: tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2."""
  return 1 - (1 - base) * (np.cos(np.pi * k / big_k) + 1) / 2


def test_normalized_mse_is_eq_2_and_two_minus_two_cosine():
  rng = np.random.default_rng(0)
  q, z = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  loss = float(normalized_mse(jnp.asarray(q, jnp.float32), jnp.asarray(z, jnp.float32)))
  np.testing.assert_allclose(loss, _eq_2(q, z), rtol=1e-5)
  cos = np.sum(q * z, 1) / np.linalg.norm(q, axis=1) / np.linalg.norm(z, axis=1)
  np.testing.assert_allclose(loss, np.mean(2 - 2 * cos), rtol=1e-5)


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(BYOL.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16}, BYOL.heads(config, 10))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  return BYOL(config, model, RunFacts(num_steps=10, batch_size=4, epoch_steps=1, num_examples=4),
              augment=brightness)


def test_target_starts_as_a_copy_of_the_online_backbone_and_projector(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  assert set(extra['target']['params']) == {'backbone', 'projector'}   # not the predictor
  for key in ('backbone', 'projector'):
    for t, o in zip(jax.tree.leaves(extra['target']['params'][key]),
                    jax.tree.leaves(variables['params'][key])):
      np.testing.assert_array_equal(t, o)


def test_loss_is_symmetrised_eq_2_of_online_predictions_and_target_projections(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  # A target that differs from the online network, as after some steps.
  extra['target']['params'] = jax.tree.map(lambda x: x * 0.9, extra['target']['params'])
  images = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': extra}
  rng = jax.random.key(1)
  loss, aux = jax.jit(method.objective)(variables['params'], model_state, {'image': images}, rng)
  x = jnp.concatenate(method.views({'image': images}, rng))
  q = method.model.apply(variables, x, train=True, heads=('projector', 'predictor'),
                         mutable=['batch_stats'])[0]['predictor']
  z = method.model.apply(extra['target'], x, train=True, heads=('projector',),
                         mutable=['batch_stats'])[0]['projector']
  q, z = np.asarray(q, np.float64), np.asarray(z, np.float64)
  want = _eq_2(q[:4], z[4:]) + _eq_2(q[4:], z[:4])   # L + L~ (views swapped)
  np.testing.assert_allclose(float(loss), want, rtol=1e-4)
  np.testing.assert_allclose(float(aux.metrics['prediction_cosine']), 1 - want / 4,
                             rtol=1e-4)
  # The target's BatchNorm statistics move (train mode); its params only by after_update.
  assert not np.allclose(aux.extra['target']['batch_stats']['projector']['bn0']['mean'],
                         extra['target']['batch_stats']['projector']['bn0']['mean'])
  for t, t0 in zip(jax.tree.leaves(aux.extra['target']['params']),
                   jax.tree.leaves(extra['target']['params'])):
    np.testing.assert_array_equal(t, t0)


@pytest.mark.parametrize('step', [0, 5, 10])
def test_after_update_is_ema_with_the_cosine_momentum(method, step):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  online = jax.tree.map(lambda x: x + 1.0, variables['params'])
  state = TrainState(step=jnp.int32(step), params=online, batch_stats=variables['batch_stats'],
                     opt_state=(), rng=jnp.zeros(2, jnp.uint32), extra=extra)
  new = method.after_update(state)
  tau = _tau(step, 10, 0.99)
  old_leaves = jax.tree.leaves(extra['target']['params'])
  new_leaves = jax.tree.leaves(new.extra['target']['params'])
  online_leaves = jax.tree.leaves({k: online[k] for k in ('backbone', 'projector')})
  assert len(new_leaves) == len(online_leaves)
  for o, n, on in zip(old_leaves, new_leaves, online_leaves):   # xi <- tau xi + (1 - tau) theta
    np.testing.assert_allclose(n, tau * np.asarray(o) + (1 - tau) * np.asarray(on), rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize('key,value', [('momentum', 1.5), ('projector', (16, 0)),
                                       ('predictor', (16, 4))])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**BYOL.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}='):
    check_block(BYOL, config)
