"""Stepwise AFN against a numpy transcription of tllib/normalization/afn.py (value and gradient)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import da_reference as ref
from tlu.methods import afn as afn_lib


@pytest.mark.parametrize('delta', [1.0, 0.3])
def test_adaptive_feature_norm_value_and_gradient_match_tllib(delta):
  f = np.abs(np.random.default_rng(0).normal(size=(5, 4)))
  value, grad = jax.value_and_grad(afn_lib.adaptive_feature_norm)(jnp.asarray(f, jnp.float32),
                                                                  delta)
  want_value, want_grad = ref.afn(f, delta)
  np.testing.assert_allclose(float(value), want_value, rtol=1e-5)   # delta^2
  np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)  # -2 delta f / (N ||f||)


def test_a_dead_feature_row_gets_no_nan_gradient():
  f = jnp.asarray([[0.0, 0.0], [3.0, 4.0]])
  grad = jax.grad(afn_lib.adaptive_feature_norm)(f, 1.0)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad[0]) == 0)


@pytest.mark.parametrize('entropy_weight, batch_norm', [(0.0, 'per_domain'), (0.03, 'joint')])
def test_afn_loss_is_tllibs_on_the_model_outputs(entropy_weight, batch_norm):
  method, variables = ref.make_method(afn_lib.AFN, entropy_weight=entropy_weight, delta=0.3,
                                      batch_norm=batch_norm)
  batch = ref.paired_batch(9)
  state = ref.model_state(variables, 0)
  loss, aux = jax.jit(method.objective)(variables['params'], state, batch, None)
  out_s, out_t, stats = ref.paired_outputs(method, variables, batch)
  norm = ref.afn(out_s['features'], 0.3)[0] + ref.afn(out_t['features'], 0.3)[0]
  want = (ref.cross_entropy(out_s['head'], batch['label']) + 0.05 * norm +
          entropy_weight * ref.entropy(ref.softmax(out_t['head'])).mean())
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['target_feature_norm']),
                             np.linalg.norm(out_t['features'], axis=1).mean(), rtol=1e-5)
  for path, value in ref.flat(aux.batch_stats).items():
    np.testing.assert_allclose(value, ref.flat(stats)[path], rtol=1e-5, atol=1e-6)
