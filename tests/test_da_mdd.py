"""MDD against a numpy transcription of tllib/alignment/mdd.py, and its reversed gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import da_reference as ref
from tlu.methods import mdd as mdd_lib


@pytest.mark.parametrize('margin', [1.0, 4.0])
def test_margin_disparity_matches_tllib(margin):
  rng = np.random.default_rng(0)
  y_s, y_s_adv, y_t, y_t_adv = (rng.normal(size=(6, 4)) * 2 for _ in range(4))
  y_t_adv[0] = 40.0 * np.eye(4)[np.argmax(y_t[0])]   # p' = 1: the shifted log stays finite
  as32 = lambda x: jnp.asarray(x, jnp.float32)
  got = mdd_lib.margin_disparity(as32(y_s), as32(y_s_adv), as32(y_t), as32(y_t_adv), margin)
  np.testing.assert_allclose(float(got), ref.mdd(y_s, y_s_adv, y_t, y_t_adv, margin), rtol=1e-5)


@pytest.mark.parametrize('batch_norm', ['joint', 'per_domain'])
def test_mdd_loss_is_tllibs_on_the_model_outputs(batch_norm):
  method, variables = ref.make_method(mdd_lib.MDD, batch_norm=batch_norm, domain_weight=0.5)
  batch = ref.paired_batch(7)
  loss, aux = jax.jit(method.objective)(variables['params'], ref.model_state(variables, 4),
                                      batch, None)
  out_s, out_t, stats = ref.paired_outputs(method, variables, batch)
  adv = lambda f: np.asarray(method.model.apply({'params': variables['params']}, 'adv_head',
                                                jnp.asarray(f, jnp.float32),
                                                method='apply_head'), np.float64)
  disparity = ref.mdd(out_s['head'], adv(out_s['features']), out_t['head'],
                      adv(out_t['features']), 4.0)
  # TLlib's script: loss = cls_loss + trade_off * transfer_loss, transfer_loss = -mdd(...).
  want = ref.cross_entropy(out_s['head'], batch['label']) + 0.5 * -disparity
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['lambda']), 0.1 * math.tanh(5 * 4 / 10),
                             rtol=1e-6)
  for path, value in ref.flat(aux.batch_stats).items():
    np.testing.assert_allclose(value, ref.flat(stats)[path], rtol=1e-5, atol=1e-6)


def test_mdd_adversary_maximises_the_disparity_and_the_features_minimise_it():
  """adv_head: grad of -w D (it maximises D); backbone: grad CE - lambda grad(-w D);
  main head: grad CE only (D reads its argmax)."""
  method, variables = ref.make_method(mdd_lib.MDD, batch_norm='joint', domain_weight=0.5)
  batch, step, model = ref.paired_batch(8), 7, method.model
  grads, _ = jax.jit(jax.grad(method.objective, has_aux=True))(
      variables['params'], ref.model_state(variables, step), batch, None)

  def parts(params):   # the two terms without reversal, written out again
    images = jnp.concatenate([batch['image'], batch['target_image']]).astype(jnp.float32) / 255
    out, _ = model.apply({'params': params, 'batch_stats': variables['batch_stats']}, images,
                         train=True, heads=('head', 'adv_head'), mutable=['batch_stats'])
    y, y_adv = out['head'], out['adv_head']
    ce = optax.softmax_cross_entropy_with_integer_labels(y[:4], batch['label']).mean()
    pred = jnp.argmax(y, -1)
    src = optax.softmax_cross_entropy_with_integer_labels(y_adv[:4], pred[:4])
    p = jax.nn.softmax(y_adv[4:])[jnp.arange(4), pred[4:]]
    tgt = jnp.log(jnp.minimum(1 - p + 1e-6, 1.0))
    return ce, -0.5 * jnp.mean(-4.0 * src + tgt)

  g_ce = jax.grad(lambda p: parts(p)[0])(variables['params'])
  g_t = jax.grad(lambda p: parts(p)[1])(variables['params'])
  lam = 0.1 * math.tanh(5 * step / 10)
  for name, want in (('backbone', lambda p: ref.flat(g_ce['backbone'])[p] -
                      lam * ref.flat(g_t['backbone'])[p]),
                     ('adv_head', lambda p: ref.flat(g_t['adv_head'])[p]),
                     ('head', lambda p: ref.flat(g_ce['head'])[p])):
    for path, got in ref.flat(grads[name]).items():
      np.testing.assert_allclose(got, want(path), rtol=2e-4, atol=1e-6, err_msg=name + path)
