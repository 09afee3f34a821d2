"""DAN's MK-MMD against a numpy transcription of tllib/alignment/dan.py and modules/kernels.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import da_reference as ref
from tlu.adapt import mmd
from tlu.methods import dan as dan_lib
from method_block import check_block

ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)


@pytest.mark.parametrize('linear', [False, True])
@pytest.mark.parametrize('batch_size', [2, 3, 5])
def test_index_matrix_is_tllibs(batch_size, linear):
  np.testing.assert_allclose(mmd.index_matrix(batch_size, linear),
                             ref.update_index_matrix(batch_size, linear), rtol=1e-6)


def test_gaussian_kernels_are_tllibs():
  x = np.random.default_rng(0).normal(size=(6, 4))
  np.testing.assert_allclose(mmd.gaussian_kernels(jnp.asarray(x, jnp.float32), ALPHAS),
                             sum(ref.gaussian_kernel(x, alpha=a) for a in ALPHAS), rtol=1e-5)
  np.testing.assert_allclose(mmd.gaussian_kernels(jnp.asarray(x, jnp.float32), sigma=0.92),
                             ref.gaussian_kernel(x, sigma=0.92), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize('linear', [False, True])
def test_mk_mmd_matches_tllib(linear):
  rng = np.random.default_rng(1)
  z_s, z_t = rng.normal(size=(5, 7)), rng.normal(size=(5, 7)) + 0.5
  got = mmd.mk_mmd(jnp.asarray(z_s, jnp.float32), jnp.asarray(z_t, jnp.float32), ALPHAS, linear)
  np.testing.assert_allclose(float(got), ref.mk_mmd(z_s, z_t, ALPHAS, linear), rtol=1e-5)


def test_mk_mmd_bandwidth_carries_no_gradient():
  """TLlib detaches the distances that set sigma: the gradient is that of fixed-sigma kernels."""
  rng = np.random.default_rng(2)
  z_s, z_t = (jnp.asarray(rng.normal(size=(4, 3)), jnp.float32) for _ in range(2))
  x = np.concatenate([np.asarray(z_s, np.float64), np.asarray(z_t, np.float64)])
  mean_d2 = np.mean(((x[None] - x[:, None]) ** 2).sum(-1))
  w = jnp.asarray(ref.update_index_matrix(4, False), jnp.float32)

  def fixed(zs):
    z = jnp.concatenate([zs, z_t])
    d2 = jnp.sum((z[None] - z[:, None]) ** 2, -1)
    return jnp.sum(sum(jnp.exp(-d2 / (2 * a * mean_d2)) for a in ALPHAS) * w)

  np.testing.assert_allclose(jax.grad(lambda zs: mmd.mk_mmd(zs, z_t, ALPHAS))(z_s),
                             jax.grad(fixed)(z_s), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('logits, linear, batch_norm', [
    (False, True, 'per_domain'), (True, False, 'joint')])
def test_dan_loss_is_tllibs_on_the_model_outputs(logits, linear, batch_norm):
  method, variables = ref.make_method(dan_lib.DAN, logits=logits, linear=linear,
                                      batch_norm=batch_norm, domain_weight=0.5)
  batch = ref.paired_batch(3)
  loss, aux = jax.jit(method.objective)(variables['params'], ref.model_state(variables, 0),
                                      batch, None)
  out_s, out_t, stats = ref.paired_outputs(method, variables, batch)
  transfer = ref.mk_mmd(out_s['features'], out_t['features'], ALPHAS, linear)
  if logits:
    transfer += ref.mk_mmd(out_s['head'], out_t['head'], ALPHAS, linear)
  want = ref.cross_entropy(out_s['head'], batch['label']) + 0.5 * transfer
  np.testing.assert_allclose(float(loss), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['mmd']), transfer, rtol=1e-5, atol=1e-5)
  for path, value in ref.flat(aux.batch_stats).items():
    np.testing.assert_allclose(value, ref.flat(stats)[path], rtol=1e-5, atol=1e-6)


def test_dan_checks_its_keys():
  import ml_collections  # pylint: disable=import-outside-toplevel
  for bad in ({'kernel_alphas': ()}, {'kernel_alphas': (1.0, 0.0)}, {'linear': 'yes'},
              {'domain_weight': -1.0}, {'batch_norm': 'none'}):
    config = ml_collections.ConfigDict({**dan_lib.DAN.example_config(), **bad})
    with pytest.raises(ValueError, match=f'method.{next(iter(bad))}'):
      check_block(dan_lib.DAN, config)
