"""BSP against a numpy transcription of tllib/alignment/bsp.py, a regulariser on DANN and CDAN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import da_reference as ref
from tlu.methods import bsp, cdan, cdan_bsp, dann, dann_bsp
from method_block import check_block


def test_batch_spectral_penalty_matches_tllib_and_its_gradient_is_2_sigma_u_v():
  rng = np.random.default_rng(0)
  f_s, f_t = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  as32 = lambda x: jnp.asarray(x, jnp.float32)
  value, (g_s, _) = jax.value_and_grad(bsp.batch_spectral_penalty, argnums=(0, 1))(
      as32(f_s), as32(f_t))
  np.testing.assert_allclose(float(value), ref.bsp(f_s, f_t), rtol=1e-5)
  u, s, vt = np.linalg.svd(f_s)
  np.testing.assert_allclose(g_s, 2 * s[0] * np.outer(u[:, 0], vt[0]), rtol=1e-4, atol=1e-6)
  s_s, s_t = np.linalg.svd(f_s)[1], np.linalg.svd(f_t)[1]
  np.testing.assert_allclose(float(bsp.batch_spectral_penalty(as32(f_s), as32(f_t), 2)),
                             np.sum(s_s[:2] ** 2) + np.sum(s_t[:2] ** 2), rtol=1e-5)


@pytest.mark.parametrize('child, parent', [(dann_bsp.DANNBSP, dann.DANN),
                                           (cdan_bsp.CDANBSP, cdan.CDAN)])
def test_bsp_adds_its_penalty_on_the_parents_features_to_the_parents_loss(child, parent):
  assert issubclass(child, parent)
  method, variables = ref.make_method(child, bsp_weight=0.01)
  base, _ = ref.make_method(parent)
  batch, state = ref.paired_batch(10), ref.model_state(variables, 2)
  loss, aux = jax.jit(method.objective)(variables['params'], state, batch, None)
  parent_loss, _ = jax.jit(base.objective)(variables['params'], state, batch, None)
  out_s, out_t, _ = ref.paired_outputs(method, variables, batch)
  penalty = ref.bsp(out_s['features'], out_t['features'])
  np.testing.assert_allclose(float(loss), float(parent_loss) + 0.01 * penalty, rtol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['bsp_penalty']), penalty, rtol=1e-4)
  assert {'domain_accuracy', 'lambda', 'class_loss'} <= set(aux.metrics)   # the parent's


def test_bsp_checks_its_keys_and_the_parents():
  import ml_collections  # pylint: disable=import-outside-toplevel
  for bad in ({'bsp_weight': -1.0}, {'bsp_k': 0}, {'domain_head': (8, 2)}):
    config = ml_collections.ConfigDict({**dann_bsp.DANNBSP.example_config(), **bad})
    with pytest.raises(ValueError, match=f'method.{next(iter(bad))}'):
      check_block(dann_bsp.DANNBSP, config)
