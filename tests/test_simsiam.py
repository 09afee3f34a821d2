"""SimSiam against a numpy transcription of the paper's Algorithm 1, its stop-gradient and
its projector (BatchNorm on every layer, the output's without affine parameters)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.methods.facts import RunFacts
from tlu.methods.simsiam import SimSiam
from tlu.models import build_model
from tlu.unsupervised.ssl_losses import negative_cosine
from method_block import check_block


def _d(p, z):
  """Algorithm 1's D: -(normalize(p) * normalize(z)).sum(dim=1).mean()."""
  p = p / np.linalg.norm(p, axis=1, keepdims=True)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  return -(p * z).sum(axis=1).mean()


def test_negative_cosine_is_algorithm_1s_d():
  rng = np.random.default_rng(0)
  p, z = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  np.testing.assert_allclose(
      float(negative_cosine(jnp.asarray(p, jnp.float32), jnp.asarray(z, jnp.float32))),
      _d(p, z), rtol=1e-5)
  np.testing.assert_allclose(float(negative_cosine(jnp.asarray(p), jnp.asarray(3 * p))), -1.0,
                             rtol=1e-6)


@pytest.fixture(scope='module')
def setup():
  config = ml_collections.ConfigDict(SimSiam.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16},
                      SimSiam.heads(config, 10))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  method = SimSiam(config, model, RunFacts(num_steps=10, batch_size=8, epoch_steps=1, num_examples=8),
                   augment=brightness)
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': {}}
  return method, variables, {'image': images}, model_state


def _outputs(method, params, variables, batch, rng):
  x = jnp.concatenate(method.views(batch, rng))
  return method.model.apply({**variables, 'params': params}, x, train=True,
                            heads=('projector', 'predictor'), mutable=['batch_stats'])[0]


def test_loss_is_algorithm_1(setup):
  method, variables, batch, model_state = setup
  rng = jax.random.key(3)
  loss, _ = jax.jit(method.objective)(variables['params'], model_state, batch, rng)
  out = _outputs(method, variables['params'], variables, batch, rng)
  p, z = np.asarray(out['predictor'], np.float64), np.asarray(out['projector'], np.float64)
  p1, p2, z1, z2 = p[:8], p[8:], z[:8], z[8:]
  np.testing.assert_allclose(float(loss), _d(p1, z2) / 2 + _d(p2, z1) / 2, rtol=1e-5)


def test_gradient_flows_through_the_predictions_only(setup):
  # stopgrad(z): the gradient is that of the loss with z computed from constant parameters.
  method, variables, batch, model_state = setup
  rng = jax.random.key(3)
  grads = jax.grad(lambda p: method.loss_fn(p, model_state, batch, rng).loss)(variables['params'])
  z = _outputs(method, variables['params'], variables, batch, rng)['projector']
  z1, z2 = jnp.split(z, 2)   # constants

  def with_constant_targets(params):
    p1, p2 = jnp.split(_outputs(method, params, variables, batch, rng)['predictor'], 2)
    return negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2

  want = jax.grad(with_constant_targets)(variables['params'])
  for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
  # and it differs from the gradient without the stop (both branches differentiated)

  def no_stop(params):
    out = _outputs(method, params, variables, batch, rng)
    (p1, p2), (z1, z2) = jnp.split(out['predictor'], 2), jnp.split(out['projector'], 2)
    return negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2
  full = jax.grad(no_stop)(variables['params'])
  assert not np.allclose(grads['projector']['dense0']['kernel'],
                         full['projector']['dense0']['kernel'], atol=1e-6)


def test_projector_ends_in_batch_norm_without_affine_parameters(setup):
  method, variables, batch, _ = setup
  last = len(method.config.projector) - 1
  assert f'bn{last}' not in variables['params']['projector']   # no scale, no bias
  assert f'bn{last}' in variables['batch_stats']['projector']
  assert set(variables['params']['projector']['bn0']) == {'scale', 'bias'}
  z = np.asarray(_outputs(method, variables['params'], variables, batch,
                          jax.random.key(3))['projector'], np.float64)
  np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)     # train mode: batch statistics
  np.testing.assert_allclose(z.var(0), 1, rtol=1e-2)


@pytest.mark.parametrize('key,value', [('projector', (16, 0)), ('predictor', (4, 16)),
                                       ('predictor', ())])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**SimSiam.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}='):
    check_block(SimSiam, config)
