"""CDAN / CDAN+E against a numpy transcription of tllib/alignment/cdan.py, and its gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import da_reference as ref
from tlu.methods import cdan as cdan_lib
from method_block import check_block


def test_multilinear_map_is_tllibs_outer_product():
  rng = np.random.default_rng(0)
  f, g = rng.normal(size=(5, 6)), ref.softmax(rng.normal(size=(5, 3)))
  got = cdan_lib.multilinear_map(jnp.asarray(f, jnp.float32), jnp.asarray(g, jnp.float32))
  np.testing.assert_allclose(got, ref.multilinear_map(f, g), rtol=1e-5, atol=1e-7)


def test_randomized_map_is_tllibs_with_its_fixed_matrices():
  rng = np.random.default_rng(1)
  f, g = rng.normal(size=(5, 6)), ref.softmax(rng.normal(size=(5, 3)))
  r_f, r_g = (np.asarray(m, np.float64) for m in cdan_lib.random_matrices(6, 3, 16))
  assert r_f.shape == (6, 16) and r_g.shape == (3, 16)
  assert abs(r_f.mean()) < 0.5 and 0.5 < r_f.std() < 1.5   # standard normal draws
  got = cdan_lib.multilinear_map(jnp.asarray(f, jnp.float32), jnp.asarray(g, jnp.float32), 16)
  np.testing.assert_allclose(got, ref.randomized_multilinear_map(f, g, r_f, r_g),
                             rtol=1e-4, atol=1e-5)
  # Fixed for the whole run (and every run): the same matrices on every call.
  again = cdan_lib.random_matrices(6, 3, 16)
  np.testing.assert_array_equal(np.asarray(again[0]), np.asarray(cdan_lib.random_matrices(
      6, 3, 16)[0]))


@pytest.mark.parametrize('entropy', [False, True])
def test_conditional_domain_loss_matches_tllib(entropy):
  rng = np.random.default_rng(2)
  g_s, g_t = rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4)) * 2
  d_logit = rng.normal(size=(10, 1)) * 2          # ours: logit of "from the target"
  probs = ref.softmax(np.concatenate([g_s, g_t]))
  is_target = np.array([0.0] * 5 + [1.0] * 5)
  loss, acc = cdan_lib.conditional_domain_loss(jnp.asarray(d_logit, jnp.float32),
                                               jnp.asarray(probs, jnp.float32),
                                               jnp.asarray(is_target, jnp.float32), entropy)
  # TLlib's discriminator outputs P(source) (label 1): sigmoid of minus our logit.
  want = ref.cdan_loss(1 / (1 + np.exp(d_logit)), g_s, g_t, entropy)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(acc), np.mean((d_logit[:, 0] > 0) == is_target), rtol=1e-6)


@pytest.mark.parametrize('batch_norm, entropy, randomized_dim', [
    ('per_domain', True, 0), ('joint', False, 0), ('joint', True, 16)])
def test_cdan_loss_is_tllibs_on_the_model_outputs(batch_norm, entropy, randomized_dim):
  method, variables = ref.make_method(cdan_lib.CDAN, batch_norm=batch_norm, entropy=entropy,
                                      randomized_dim=randomized_dim, domain_weight=0.7)
  batch = ref.paired_batch()
  loss, aux = jax.jit(method.objective)(variables['params'], ref.model_state(variables, 3),
                                      batch, None)
  out_s, out_t, stats = ref.paired_outputs(method, variables, batch)
  f = np.concatenate([out_s['features'], out_t['features']])
  g = ref.softmax(np.concatenate([out_s['head'], out_t['head']]))
  if randomized_dim:
    r_f, r_g = (np.asarray(m, np.float64) for m in cdan_lib.random_matrices(6, 3, 16))
    h = ref.randomized_multilinear_map(f, g, r_f, r_g)
  else:
    h = ref.multilinear_map(f, g)
  d_logit = np.asarray(method.model.apply({'params': variables['params']}, 'domain_head',
                                          jnp.asarray(h, jnp.float32), method='apply_head'),
                       np.float64)
  transfer = ref.cdan_loss(1 / (1 + np.exp(d_logit)), out_s['head'], out_t['head'], entropy)
  want = ref.cross_entropy(out_s['head'], batch['label']) + 0.7 * transfer
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['lambda']), math.tanh(5 * 3 / 10), rtol=1e-6)
  np.testing.assert_allclose(aux.outputs['features'], f, rtol=1e-5, atol=1e-6)
  for path, value in ref.flat(aux.batch_stats).items():
    np.testing.assert_allclose(value, ref.flat(stats)[path], rtol=1e-5, atol=1e-6)


def test_cdan_reverses_the_conditioned_discriminator_gradient_into_the_backbone_only():
  """Backbone: grad CE - lambda grad D-loss; discriminator: grad D-loss; classifier: grad CE only
  (the predictions that condition the discriminator carry no gradient, as in TLlib)."""
  method, variables = ref.make_method(cdan_lib.CDAN, batch_norm='joint', entropy=True)
  batch, step, model = ref.paired_batch(1), 6, method.model
  grads, _ = jax.jit(jax.grad(method.objective, has_aux=True))(
      variables['params'], ref.model_state(variables, step), batch, None)

  def parts(params):   # the two losses without any reversal, written out again
    images = jnp.concatenate([batch['image'], batch['target_image']]).astype(jnp.float32) / 255
    out, _ = model.apply({'params': params, 'batch_stats': variables['batch_stats']}, images,
                         train=True, heads=('head',), mutable=['batch_stats'])
    ce = optax.softmax_cross_entropy_with_integer_labels(out['head'][:4], batch['label']).mean()
    g = jax.lax.stop_gradient(jax.nn.softmax(out['head']))
    h = jnp.einsum('nc,nf->ncf', g, out['features']).reshape(8, -1)
    d = model.apply({'params': params}, 'domain_head', h, method='apply_head')[:, 0]
    w = 1 + jnp.exp(jnp.sum(g * jnp.log(g + 1e-5), 1))
    w = 8 * w / w.sum()
    y = jnp.array([0.0] * 4 + [1.0] * 4)
    bce = -(y * jax.nn.log_sigmoid(d) + (1 - y) * jax.nn.log_sigmoid(-d))
    return ce, jnp.mean(w * bce)

  g_ce = jax.grad(lambda p: parts(p)[0])(variables['params'])
  g_d = jax.grad(lambda p: parts(p)[1])(variables['params'])
  lam = math.tanh(5 * step / 10)
  for name, want in (('backbone', lambda p: ref.flat(g_ce['backbone'])[p] -
                      lam * ref.flat(g_d['backbone'])[p]),
                     ('domain_head', lambda p: ref.flat(g_d['domain_head'])[p]),
                     ('head', lambda p: ref.flat(g_ce['head'])[p])):
    for path, got in ref.flat(grads[name]).items():
      np.testing.assert_allclose(got, want(path), rtol=2e-4, atol=1e-6, err_msg=name + path)


def test_cdan_checks_its_keys():
  import ml_collections  # pylint: disable=import-outside-toplevel
  for bad in ({'entropy': 1}, {'randomized_dim': -1}, {'domain_head': (8, 2)}):
    config = ml_collections.ConfigDict({**cdan_lib.CDAN.example_config(), **bad})
    with pytest.raises(ValueError, match=f'method.{next(iter(bad))}'):
      check_block(cdan_lib.CDAN, config)
