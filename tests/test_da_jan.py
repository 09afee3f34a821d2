"""JAN's joint MMD against a numpy transcription of tllib/alignment/jan.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import da_reference as ref
from tlu.adapt import mmd
from tlu.methods import jan as jan_lib

ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)
TLLIB_KERNELS = ([{'alpha': a} for a in ALPHAS], [{'sigma': 0.92}])   # JAN's script


@pytest.mark.parametrize('linear', [False, True])
def test_jmmd_matches_tllib(linear):
  rng = np.random.default_rng(0)
  f_s, f_t = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) + 0.3
  p_s, p_t = ref.softmax(rng.normal(size=(6, 3))), ref.softmax(rng.normal(size=(6, 3)))
  as32 = lambda x: jnp.asarray(x, jnp.float32)
  got = mmd.jmmd((as32(f_s), as32(p_s)), (as32(f_t), as32(p_t)),
                 ((ALPHAS, None), ((), 0.92)), linear)
  np.testing.assert_allclose(float(got), ref.jmmd((f_s, p_s), (f_t, p_t), TLLIB_KERNELS, linear),
                             rtol=1e-5)


@pytest.mark.parametrize('batch_norm', ['joint', 'per_domain'])
def test_jan_loss_is_tllibs_on_the_model_outputs(batch_norm):
  method, variables = ref.make_method(jan_lib.JAN, batch_norm=batch_norm, domain_weight=2.0)
  batch = ref.paired_batch(4)
  loss, aux = jax.jit(method.objective)(variables['params'], ref.model_state(variables, 0),
                                      batch, None)
  out_s, out_t, stats = ref.paired_outputs(method, variables, batch)
  transfer = ref.jmmd((out_s['features'], ref.softmax(out_s['head'])),
                      (out_t['features'], ref.softmax(out_t['head'])), TLLIB_KERNELS, False)
  want = ref.cross_entropy(out_s['head'], batch['label']) + 2.0 * transfer
  np.testing.assert_allclose(float(loss), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['jmmd']), transfer, rtol=1e-5, atol=1e-5)
  for path, value in ref.flat(aux.batch_stats).items():
    np.testing.assert_allclose(value, ref.flat(stats)[path], rtol=1e-5, atol=1e-6)


def test_jan_trains_the_classifier_through_the_softmax_kernel():
  """The softmax layer is not detached: the JMMD alone moves the classifier's weights."""
  method, variables = ref.make_method(jan_lib.JAN, batch_norm='joint')
  batch = ref.paired_batch(5)
  state = ref.model_state(variables, 0)
  grad_of_loss = lambda p: jax.grad(lambda q: method.loss_fn(q, state, batch, None).loss)(p)
  grads = grad_of_loss(variables['params'])
  method.config.domain_weight = 0.0
  grads_ce = grad_of_loss(variables['params'])
  diff = np.abs(ref.flat(grads['head'])["['kernel']"] - ref.flat(grads_ce['head'])["['kernel']"])
  assert diff.max() > 1e-6
