"""Barlow Twins against a numpy transcription of the paper's Algorithm 1, and over the
global batch on 8 devices."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from global_batch_check import run_on_eight_devices
from tlu.methods.barlow_twins import BarlowTwins
from tlu.methods.facts import RunFacts
from tlu.models import build_model
from tlu.unsupervised.ssl_losses import barlow_twins, cross_correlation
from method_block import check_block


def _algorithm_1(z_a, z_b, lambd, eps=1e-5):
  """The paper's Algorithm 1 in numpy, normalising as its reference code's BatchNorm1d
  (biased variance + eps, so C_ii -> 1 as eq. 2; the pseudo-code's torch std is unbiased)."""
  n, d = z_a.shape
  z_a_norm = (z_a - z_a.mean(0)) / np.sqrt(z_a.var(0) + eps)
  z_b_norm = (z_b - z_b.mean(0)) / np.sqrt(z_b.var(0) + eps)
  c = z_a_norm.T @ z_b_norm / n
  c_diff = (c - np.eye(d)) ** 2
  c_diff[~np.eye(d, dtype=bool)] *= lambd
  return c_diff.sum()


def _pair(seed, n=32, d=6):
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + rng.normal(size=d)
  return z1, z1 + 0.7 * rng.normal(size=(n, d))


def test_loss_matches_algorithm_1():
  z1, z2 = _pair(0)
  for lambd in (5e-3, 0.0, 1.0):
    loss, aux = barlow_twins(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), lambd)
    np.testing.assert_allclose(float(loss), _algorithm_1(z1, z2, lambd), rtol=1e-5)
  np.testing.assert_allclose(float(aux['on_diagonal']), _algorithm_1(z1, z2, 0.0), rtol=1e-5)


def test_cross_correlation_is_eq_2_the_pearson_correlation_between_views():
  z1, z2 = _pair(1)
  c = cross_correlation(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32))
  want = np.corrcoef(z1.T, z2.T)[:6, 6:]   # rows: dimensions of view 1; columns: of view 2
  np.testing.assert_allclose(np.asarray(c), want, atol=1e-4)


def test_identical_decorrelated_views_give_zero_loss():
  # Whitened features (identity covariance over the batch), seen twice: C = I.
  z = np.random.default_rng(2).normal(size=(16, 4))
  z -= z.mean(0)
  z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T, bias=True))).T
  loss, _ = barlow_twins(jnp.asarray(z, jnp.float32), jnp.asarray(z, jnp.float32), 5e-3)
  assert abs(float(loss)) < 1e-4


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(BarlowTwins.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16},
                      BarlowTwins.heads(config, 10))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  return BarlowTwins(config, model, RunFacts(num_steps=10, batch_size=8, epoch_steps=1, num_examples=8),
                     augment=brightness)


def test_method_loss_is_algorithm_1_of_the_two_views_projections(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': {}}
  rng = jax.random.key(3)
  loss, aux = jax.jit(method.objective)(variables['params'], model_state, {'image': images}, rng)
  x = jnp.concatenate(method.views({'image': images}, rng))
  z = method.model.apply(variables, x, train=True, heads=('projector',),
                         mutable=['batch_stats'])[0]['projector']
  z = np.asarray(z, np.float64)
  np.testing.assert_allclose(float(loss), _algorithm_1(z[:8], z[8:], 5e-3), rtol=1e-4)
  assert set(aux.metrics) == {'on_diagonal', 'off_diagonal'}


@pytest.mark.parametrize('key,value', [('off_diagonal_weight', -1e-3), ('projector', (16, 0))])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**BarlowTwins.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}='):
    check_block(BarlowTwins, config)


def test_eight_devices_give_the_loss_of_the_global_batch():
  r = run_on_eight_devices('barlow_twins')
  assert r['devices'] == 8
  np.testing.assert_allclose(r['loss_8'], r['loss_1'], rtol=1e-5)
  assert r['grad_max_diff'] < 1e-4 * max(r['grad_max_abs'], 1.0)
  np.testing.assert_allclose(r['embeddings_loss_8'], r['embeddings_loss_1'], rtol=1e-5)
  assert r['embeddings_grad_max_diff'] < 1e-5
  # A loss over each device's 2 examples would be far off: the comparison is not vacuous.
  assert abs(r['per_device_mean'] - r['embeddings_loss_1']) > 0.1 * r['embeddings_loss_1']
