"""SwAV against a numpy transcription of the reference code (Sinkhorn-Knopp, swapped
prediction over multi-crop views), and its unit prototypes."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.data import augment as augment_lib
from tlu.methods.facts import RunFacts
from tlu.methods.swav import Prototypes, SwAV, swav_loss
from tlu.models import build_model
from tlu.train.state import TrainState
from tlu.unsupervised.sinkhorn import sinkhorn
from method_block import check_block


def numpy_sinkhorn(out, epsilon, iters):
  """The reference code's distributed_sinkhorn on one process."""
  q = np.exp(out / epsilon).T          # K x B
  b, k = q.shape[1], q.shape[0]
  q /= q.sum()
  for _ in range(iters):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  q *= b
  return q.T


def log_softmax(x):
  x = x - x.max(axis=1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def numpy_swav_loss(output, bs, crops_for_assign, nmb_crops, temperature, epsilon, iters):
  """The reference training step's loss: output is (sum(nmb_crops) * bs, K), crop-major."""
  loss = 0
  for crop_id in crops_for_assign:
    q = numpy_sinkhorn(output[bs * crop_id: bs * (crop_id + 1)], epsilon, iters)
    subloss = 0
    for v in np.delete(np.arange(nmb_crops), crop_id):
      x = output[bs * v: bs * (v + 1)] / temperature
      subloss -= np.mean(np.sum(q * log_softmax(x), axis=1))
    loss += subloss / (nmb_crops - 1)
  return loss / len(crops_for_assign)


def test_sinkhorn_matches_the_reference_code():
  scores = np.random.default_rng(0).uniform(-1, 1, size=(12, 5))
  np.testing.assert_allclose(sinkhorn(jnp.asarray(scores, jnp.float32), 0.05, 3),
                             numpy_sinkhorn(scores, 0.05, 3), rtol=2e-4, atol=1e-6)


def test_sinkhorn_marginals_every_code_sums_to_one_and_prototypes_share_the_batch():
  scores = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, size=(40, 8)), jnp.float32)
  codes = np.asarray(sinkhorn(scores, 0.05, 3))
  assert codes.shape == (40, 8) and np.all(codes >= 0)
  np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-5)    # columns of Q: exact
  # Rows of Q (prototypes) approach B/K as the iterations converge.
  err = [np.abs(np.asarray(sinkhorn(scores, 0.5, n)).sum(axis=0) - 40 / 8).max()
         for n in (1, 3, 50)]
  assert err[2] < 1e-3 < err[0] and err[2] < err[1] < err[0]


def test_sinkhorn_is_invariant_to_a_shift_and_has_no_gradient():
  scores = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, size=(6, 4)), jnp.float32)
  np.testing.assert_allclose(sinkhorn(scores + 3.0), sinkhorn(scores), rtol=1e-5, atol=1e-7)
  grad = jax.grad(lambda s: jnp.sum(sinkhorn(s) * jnp.arange(4.0)))(scores)
  np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize('num_views,num_global', [(2, 2), (6, 2), (3, 1)])
def test_swav_loss_matches_the_reference_loop(num_views, num_global):
  rng = np.random.default_rng(num_views)
  z = rng.normal(size=(num_views, 10, 6))
  c = rng.normal(size=(6, 7))
  z /= np.linalg.norm(z, axis=-1, keepdims=True)
  c /= np.linalg.norm(c, axis=0, keepdims=True)
  scores = z @ c                                   # (V, N, K) cosines
  loss, codes = swav_loss(jnp.asarray(scores, jnp.float32), num_global, 0.1, 0.05, 3)
  want = numpy_swav_loss(scores.reshape(-1, 7), 10, list(range(num_global)), num_views,
                         0.1, 0.05, 3)
  np.testing.assert_allclose(float(loss), want, rtol=1e-4)
  assert codes.shape == (num_global, 10, 7)


def test_two_view_loss_is_equation_1_halved():
  rng = np.random.default_rng(3)
  scores = np.tanh(rng.normal(size=(2, 8, 5)))
  q = [numpy_sinkhorn(scores[i], 0.05, 3) for i in range(2)]
  ell = lambda s, q: -np.mean(np.sum(q * log_softmax(s / 0.1), axis=1))
  loss, _ = swav_loss(jnp.asarray(scores, jnp.float32), 2, 0.1)
  np.testing.assert_allclose(float(loss), (ell(scores[0], q[1]) + ell(scores[1], q[0])) / 2,
                             rtol=1e-4)


def test_prototypes_score_cosines_with_a_straight_through_gradient():
  layer = Prototypes(num_prototypes=3)
  x = jnp.asarray(np.random.default_rng(4).normal(size=(5, 4)), jnp.float32)
  params = layer.init(jax.random.key(0), x)
  kernel = np.asarray(params['params']['kernel'])
  unit = kernel / np.linalg.norm(kernel, axis=0)
  xn = np.asarray(x) / np.linalg.norm(np.asarray(x), axis=1, keepdims=True)
  np.testing.assert_allclose(layer.apply(params, x), xn @ unit, rtol=1e-5, atol=1e-6)
  # SwAV normalises outside autograd: the gradient wrt the kernel is that wrt the unit
  # prototypes, x_n^T upstream.
  grad = jax.grad(lambda p: jnp.sum(layer.apply(p, x)))(params)['params']['kernel']
  np.testing.assert_allclose(grad, xn.sum(0)[:, None] * np.ones((1, 3)), rtol=1e-5)


def make_method(config=None, spec=None, pool='flatten'):
  config = ml_collections.ConfigDict(config or SwAV.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16, 'pool': pool},
                      SwAV.heads(config, 10))
  augment = augment_lib.make_augment(spec) if spec else (lambda key, x: x)
  return SwAV(config, model, RunFacts(num_steps=10, batch_size=4, epoch_steps=1, num_examples=4),
              augment=augment)


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_method_loss_is_the_reference_loss_of_its_multi_crop_outputs():
  spec = {'views': [{'noise_prob': 1.0, 'noise_std': 0.1}, {'solarize_prob': 1.0}],
          'local': {'crop_scale': (0.2, 0.5)}, 'local_crops': 2, 'local_size': 4}
  method = make_method(spec=spec, pool='global')
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  images = np.random.default_rng(5).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(3), 'extra': {}}
  loss, aux = jax.jit(method.objective)(variables['params'], model_state, {'image': images},
                                      jax.random.key(1))
  # Independently: each resolution through the backbone, heads on all crops together.
  views = method.augment.views(jax.random.key(1), jnp.asarray(images, jnp.float32) / 255)
  apply = lambda x, **kw: method.model.apply(variables, x, train=True, mutable=['batch_stats'],
                                             **kw)[0]
  feats = jnp.concatenate([apply(jnp.concatenate(views[:2]))['features'],
                           apply(jnp.concatenate(views[2:]))['features']])
  z = method.model.apply(variables, 'projector', feats, True, method='apply_head',
                         mutable=['batch_stats'])[0]
  kernel = np.asarray(variables['params']['prototypes']['kernel'], np.float64)
  z = np.asarray(z, np.float64)
  output = ((z / np.linalg.norm(z, axis=1, keepdims=True)) @
            (kernel / np.linalg.norm(kernel, axis=0)))
  want = numpy_swav_loss(output, 6, [0, 1], 4, 0.1, 0.05, 3)
  np.testing.assert_allclose(float(loss), want, rtol=2e-4)
  assert aux.outputs['features'].shape == (12, 16)   # the global views'


def test_prototypes_are_frozen_for_the_first_steps_then_learn():
  method = make_method()
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  images = np.random.default_rng(6).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)

  def grads(step):
    model_state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(step), 'extra': {}}
    return jax.grad(lambda p: method.loss_fn(p, model_state, {'image': images},
                                             jax.random.key(1)).loss)(variables['params'])
  assert method.config.freeze_prototypes_steps == 1
  np.testing.assert_array_equal(grads(0)['prototypes']['kernel'], 0.0)
  assert np.abs(grads(1)['prototypes']['kernel']).max() > 0
  assert np.abs(grads(0)['projector']['dense0']['kernel']).max() > 0


def test_after_update_puts_the_prototypes_back_on_the_unit_sphere():
  method = make_method()
  variables = method.model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  params = jax.tree.map(lambda x: 3.0 * x, variables['params'])
  state = TrainState(step=jnp.int32(1), params=params, batch_stats=variables['batch_stats'],
                     opt_state=(), rng=jnp.zeros(2, jnp.uint32), extra={})
  new = method.after_update(state)
  kernel = np.asarray(params['prototypes']['kernel'])
  np.testing.assert_allclose(new.params['prototypes']['kernel'],
                             kernel / np.linalg.norm(kernel, axis=0), rtol=1e-6)
  np.testing.assert_array_equal(new.params['projector']['dense0']['kernel'],
                                params['projector']['dense0']['kernel'])


def test_check_names_the_bad_value():
  for key, value in (('epsilon', 0.0), ('sinkhorn_iterations', 0), ('num_prototypes', 0),
                     ('temperature', -1.0), ('freeze_prototypes_steps', -1)):
    with pytest.raises(ValueError, match=key):
      check_block(SwAV, ml_collections.ConfigDict({**SwAV.example_config(), key: value}))
