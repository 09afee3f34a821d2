"""MCC against a numpy transcription of tllib/self_training/mcc.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import da_reference as ref
from tlu.methods import mcc as mcc_lib


@pytest.mark.parametrize('temperature', [1.0, 2.5])
def test_class_confusion_matches_tllib(temperature):
  logits = np.random.default_rng(0).normal(size=(7, 4)) * 3
  got = mcc_lib.class_confusion(jnp.asarray(logits, jnp.float32), temperature)
  np.testing.assert_allclose(float(got), ref.mcc(logits, temperature), rtol=1e-5)


def test_confident_distinct_predictions_have_no_confusion():
  logits = 50.0 * np.eye(3)[[0, 1, 2, 0, 1, 2]]
  assert float(mcc_lib.class_confusion(jnp.asarray(logits, jnp.float32), 2.5)) < 1e-6


def test_entropy_weights_carry_no_gradient():
  """TLlib detaches the entropy that weighs the examples."""
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)), jnp.float32)
  p = np.asarray(jax.nn.softmax(logits / 2.5), np.float64)
  w = 1 + np.exp(-ref.entropy(p))
  w = jnp.asarray(6 * w / w.sum(), jnp.float32)

  def fixed_weights(z):
    q = jax.nn.softmax(z / 2.5)
    c = (q * w[:, None]).T @ q
    c = c / c.sum(1)
    return (c.sum() - jnp.trace(c)) / 3

  np.testing.assert_allclose(jax.grad(mcc_lib.class_confusion)(logits, 2.5),
                             jax.grad(fixed_weights)(logits), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('batch_norm', ['joint', 'per_domain'])
def test_mcc_loss_is_tllibs_on_the_model_outputs(batch_norm):
  method, variables = ref.make_method(mcc_lib.MCC, batch_norm=batch_norm, domain_weight=0.8)
  batch = ref.paired_batch(6)
  loss, aux = jax.jit(method.objective)(variables['params'], ref.model_state(variables, 0),
                                      batch, None)
  out_s, out_t, stats = ref.paired_outputs(method, variables, batch)
  want = ref.cross_entropy(out_s['head'], batch['label']) + 0.8 * ref.mcc(out_t['head'], 2.5)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  for path, value in ref.flat(aux.batch_stats).items():
    np.testing.assert_allclose(value, ref.flat(stats)[path], rtol=1e-5, atol=1e-6)
