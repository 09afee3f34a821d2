"""W-MSE against a numpy transcription of solo-learn's Whitening2d, wmse_loss_func and
training_step (solo/utils/whitening.py, solo/losses/wmse.py, solo/methods/wmse.py)."""

import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import ROOT
from tlu.methods.facts import RunFacts
from tlu.methods.wmse import WMSE
from tlu.models import build_model
from tlu.train import task
from tlu.unsupervised.whitening import whiten, whiten_sub_batches, wmse_loss

sys.path.insert(0, f'{ROOT}/tests')
import methods_check  # noqa: E402  pylint: disable=wrong-import-position
from method_block import check_block


def _whitening2d(x, eps=0.0):
  """solo-learn: xn = x - mean; f_cov = xn^T xn / (n - 1); shrink; inv_sqrt = L^-1 (triangular
  solve of the identity); decorrelated = conv2d(xn, inv_sqrt) = xn @ inv_sqrt^T."""
  xn = x - x.mean(0)
  f_cov = xn.T @ xn / (len(x) - 1)
  f_cov = (1 - eps) * f_cov + eps * np.eye(x.shape[1])
  inv_sqrt = np.linalg.inv(np.linalg.cholesky(f_cov))
  return xn @ inv_sqrt.T


def _cos_loss(z1, z2):
  """wmse_loss_func(simplified=True): 2 - 2 * F.cosine_similarity(z1, z2).mean()."""
  cos = np.sum(z1 * z2, 1) / np.linalg.norm(z1, axis=1) / np.linalg.norm(z2, axis=1)
  return 2 - 2 * np.mean(cos)


def _training_step_loss(v, perms, w_size):
  """solo-learn's loop: for each permutation, z[idx + i bs] = whitening(v[idx + i bs]) per
  sub-batch idx and view i; the loss averaged over view pairs i < j and iterations."""
  num_views, bs = v.shape[0], v.shape[1]
  v = v.reshape(num_views * bs, -1)
  total, count = 0.0, 0
  for perm in perms:
    z = np.empty_like(v)
    for idx in perm.reshape(-1, w_size):
      for i in range(num_views):
        z[idx + i * bs] = _whitening2d(v[idx + i * bs])
    for i in range(num_views - 1):
      for j in range(i + 1, num_views):
        total += _cos_loss(z[i * bs:(i + 1) * bs], z[j * bs:(j + 1) * bs])
        count += 1
  return total / count


@pytest.mark.parametrize('eps', [0.0, 0.1])
def test_whitening_is_solo_learns_cholesky_and_gives_identity_covariance(eps):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 4)) @ (np.eye(4) + 0.5 * rng.normal(size=(4, 4))) + 3.0   # correlated
  white = np.asarray(whiten(jnp.asarray(x, jnp.float32), eps), np.float64)
  np.testing.assert_allclose(white, _whitening2d(x, eps), rtol=1e-3, atol=1e-4)
  if eps == 0:
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(4), atol=1e-4)


def test_sub_batches_are_solo_learns_loop_and_wmse_loss_stops_the_second_gradient():
  rng = np.random.default_rng(1)
  v, perm = rng.normal(size=(2, 12, 3)), rng.permutation(12)
  got = whiten_sub_batches(jnp.asarray(v, jnp.float32), jnp.asarray(perm), 6)
  want = np.empty_like(v)
  for idx in perm.reshape(-1, 6):
    for i in range(2):
      want[i, idx] = _whitening2d(v[i, idx])
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-3, atol=1e-4)
  z1, z2 = (jnp.asarray(a, jnp.float32) for a in rng.normal(size=(2, 5, 3)))
  np.testing.assert_allclose(float(wmse_loss(z1, z2)), _cos_loss(np.asarray(z1), np.asarray(z2)),
                             rtol=1e-5)
  g1, g2 = jax.grad(wmse_loss, (0, 1))(z1, z2)
  assert np.any(np.asarray(g1) != 0) and not np.any(np.asarray(g2))


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(WMSE.example_config())
  model = build_model({'name': 'mlp', 'widths': (16,), 'features': 8}, WMSE.heads(config, 3))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  return WMSE(config, model, RunFacts(num_steps=4, batch_size=16, epoch_steps=1),
              augment=brightness)


def test_loss_is_solo_learns_training_step(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  images = np.random.default_rng(4).integers(0, 256, (16, 4, 4, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': {}}
  rng = jax.random.key(5)
  out = jax.jit(method.loss_fn)(variables['params'], model_state, {'image': images}, rng)
  view_rng, perm_rng = jax.random.split(rng)   # the method's draws, as inputs here
  perms = [np.asarray(jax.random.permutation(k, 16)) for k in jax.random.split(perm_rng, 2)]
  assert not np.array_equal(perms[0], perms[1])
  x = jnp.concatenate(method.views({'image': images}, view_rng))
  z = method.model.apply(variables, x, train=True, heads=('projector',),
                         mutable=['batch_stats'])[0]['projector']
  want = _training_step_loss(np.asarray(z, np.float64).reshape(2, 16, -1), perms, 8)
  np.testing.assert_allclose(float(out.loss), want, rtol=1e-3)


@pytest.mark.parametrize('key,value', [('w_iter', 0), ('w_eps', 1.0), ('w_size', 4),
                                       ('w_size', 1), ('projector', (0,))])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**WMSE.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}='):
    check_block(WMSE, config)


def test_task_check_wants_w_size_to_divide_the_batch():
  cfg = methods_check.config('wmse')
  task.check_task(cfg)   # batch 8, w_size 8
  cfg.batch_size = 12
  with pytest.raises(ValueError, match=r'method\.w_size=8 must divide batch_size=12'):
    task.check_task(cfg)
