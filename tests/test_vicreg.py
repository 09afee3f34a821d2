"""VICReg against a numpy transcription of the paper's Algorithm 1 (eq. 1-6), and over the
global batch on 8 devices."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from global_batch_check import run_on_eight_devices
from tlu.methods.facts import RunFacts
from tlu.methods.vicreg import VICReg
from tlu.models import build_model
from tlu.unsupervised.ssl_losses import vicreg
from method_block import check_block


def _algorithm_1(z_a, z_b, lambd=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4):
  """The paper's Algorithm 1 in numpy (torch's var: unbiased; gamma where it writes 1)."""
  n, d = z_a.shape
  sim_loss = np.mean((z_a - z_b) ** 2)                                  # F.mse_loss
  std_z_a = np.sqrt(z_a.var(axis=0, ddof=1) + eps)
  std_z_b = np.sqrt(z_b.var(axis=0, ddof=1) + eps)
  std_loss = np.mean(np.maximum(0, gamma - std_z_a)) + np.mean(np.maximum(0, gamma - std_z_b))
  z_a, z_b = z_a - z_a.mean(axis=0), z_b - z_b.mean(axis=0)
  cov_z_a, cov_z_b = z_a.T @ z_a / (n - 1), z_b.T @ z_b / (n - 1)
  off = ~np.eye(d, dtype=bool)
  cov_loss = (cov_z_a[off] ** 2).sum() / d + (cov_z_b[off] ** 2).sum() / d
  return lambd * sim_loss + mu * std_loss + nu * cov_loss, (sim_loss, std_loss, cov_loss)


def _pair(seed, n=24, d=6):
  rng = np.random.default_rng(seed)
  scales = np.linspace(0.2, 2.0, d)   # the variance hinge is active on some dimensions only
  z1 = rng.normal(size=(n, d)) * scales + rng.normal(size=d)
  return z1, z1 + 0.5 * rng.normal(size=(n, d))


def _jax(z1, z2, *weights, **kw):
  return vicreg(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), *weights, **kw)


def test_loss_and_terms_match_algorithm_1():
  z1, z2 = _pair(0)
  loss, aux = _jax(z1, z2, 25.0, 25.0, 1.0)
  want, (sim, std, cov) = _algorithm_1(z1, z2)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose([float(aux[k]) for k in ('invariance', 'variance', 'covariance')],
                             [sim, std, cov], rtol=1e-5)
  assert 0 < std   # the hinge is active somewhere


def test_weights_gamma_and_eps_enter_as_eq_6_says():
  z1, z2 = _pair(1)
  loss, _ = _jax(z1, z2, 2.0, 3.0, 0.5, gamma=1.5, eps=1e-2)
  np.testing.assert_allclose(float(loss), _algorithm_1(z1, z2, 2.0, 3.0, 0.5, 1.5, 1e-2)[0],
                             rtol=1e-5)


def test_variance_term_vanishes_when_every_std_exceeds_gamma():
  z1, z2 = _pair(2)
  _, aux = _jax(10 * z1, 10 * z2, 25.0, 25.0, 1.0)
  assert float(aux['variance']) == 0.0


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(VICReg.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16},
                      VICReg.heads(config, 10))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  return VICReg(config, model, RunFacts(num_steps=10, batch_size=8, epoch_steps=1, num_examples=8),
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
  c = method.config
  want = _algorithm_1(z[:8], z[8:], c.invariance_weight, c.variance_weight, c.covariance_weight,
                      c.gamma, c.eps)[0]
  np.testing.assert_allclose(float(loss), want, rtol=1e-4)
  assert set(aux.metrics) == {'invariance', 'variance', 'covariance'}


@pytest.mark.parametrize('key,value', [('invariance_weight', -1.0), ('variance_weight', -1.0),
                                       ('covariance_weight', -0.1), ('gamma', 0.0),
                                       ('eps', 0.0), ('projector', ())])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**VICReg.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}='):
    check_block(VICReg, config)


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_eight_devices_give_the_loss_of_the_global_batch():
  r = run_on_eight_devices('vicreg')
  assert r['devices'] == 8
  np.testing.assert_allclose(r['loss_8'], r['loss_1'], rtol=1e-5)
  assert r['grad_max_diff'] < 1e-4 * max(r['grad_max_abs'], 1.0)
  np.testing.assert_allclose(r['embeddings_loss_8'], r['embeddings_loss_1'], rtol=1e-5)
  assert r['embeddings_grad_max_diff'] < 1e-5
  # A loss over each device's 2 examples would be far off: the comparison is not vacuous.
  assert abs(r['per_device_mean'] - r['embeddings_loss_1']) > 0.1 * r['embeddings_loss_1']
