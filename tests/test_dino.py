"""DINO against a numpy transcription of the paper's Algorithm 1 (and the reference code's
multi-crop loss), its centring, and its momentum teacher."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.data import augment as augment_lib
from tlu.methods.dino import DINO, dino_loss, teacher_probabilities, update_center
from tlu.methods.facts import RunFacts
from tlu.models import build_model
from tlu.train.state import TrainState
from method_block import check_block


def softmax(x):
  e = np.exp(x - x.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def H(t, s, center, tps=0.1, tpt=0.04):
  """Algorithm 1's H(t, s)."""
  s = softmax(s / tps)
  t = softmax((t - center) / tpt)
  return -(t * np.log(s)).sum(axis=1).mean()


def reference_multicrop_loss(student, teacher, center, tps=0.1, tpt=0.04):
  """The reference code's DINOLoss.forward: teacher chunks (global views) against every
  student chunk of another view, averaged over the loss terms."""
  total, terms = 0.0, 0
  for iq, t in enumerate(teacher):
    for v, s in enumerate(student):
      if v == iq:
        continue
      total += H(t, s, center, tps, tpt)
      terms += 1
  return total / terms


def test_two_views_give_algorithm_1():
  rng = np.random.default_rng(0)
  s1, s2, t1, t2 = rng.normal(size=(4, 6, 9))
  center = rng.normal(size=9) * 0.1
  loss = dino_loss(jnp.asarray(np.stack([s1, s2]), jnp.float32),
                   jnp.asarray(np.stack([t1, t2]), jnp.float32), jnp.asarray(center, jnp.float32),
                   0.1, 0.04)
  np.testing.assert_allclose(float(loss), H(t1, s2, center) / 2 + H(t2, s1, center) / 2,
                             rtol=1e-5)


@pytest.mark.parametrize('num_views,num_global', [(5, 2), (4, 1), (3, 3)])
def test_multi_crop_loss_matches_the_reference_loop(num_views, num_global):
  rng = np.random.default_rng(num_views)
  student = rng.normal(size=(num_views, 7, 11))
  teacher = rng.normal(size=(num_global, 7, 11))
  center = rng.normal(size=11) * 0.1
  loss = dino_loss(jnp.asarray(student, jnp.float32), jnp.asarray(teacher, jnp.float32),
                   jnp.asarray(center, jnp.float32), 0.1, 0.04)
  np.testing.assert_allclose(float(loss), reference_multicrop_loss(student, teacher, center),
                             rtol=1e-5)


def test_no_gradient_reaches_the_teacher_or_the_centre():
  rng = np.random.default_rng(1)
  s, t = (jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32) for _ in range(2))
  c = jnp.zeros(4)
  g_t, g_c = jax.grad(lambda t, c: dino_loss(s, t, c, 0.1, 0.04), argnums=(0, 1))(t, c)
  np.testing.assert_array_equal(g_t, 0.0)
  np.testing.assert_array_equal(g_c, 0.0)


def test_centring_hand_values():
  # C <- 0.9 C + 0.1 mean over both global views and the batch of the teacher outputs:
  # the mean of the four rows is (1, 1, 1).
  center = jnp.array([1.0, 0.0, -1.0])
  teacher = jnp.array([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]],      # view 1, images 1-2
                       [[0.0, 0.0, 2.0], [2.0, 2.0, 2.0]]])     # view 2
  np.testing.assert_allclose(update_center(center, teacher, 0.9), [1.0, 0.1, -0.8], rtol=1e-6)
  # Centring and sharpening: softmax((g_t - C) / tau_t) = softmax((2, 0, 0)) here.
  p = teacher_probabilities(jnp.array([[2.0, 1.0, 0.0]]), jnp.array([1.0, 1.0, 0.0]), 0.5)
  e2 = np.exp(2.0)
  np.testing.assert_allclose(p[0], [e2 / (e2 + 2), 1 / (e2 + 2), 1 / (e2 + 2)], rtol=1e-6)
  # A shift common to every dimension changes nothing.
  np.testing.assert_allclose(teacher_probabilities(jnp.array([[5.0, 1.0]]), 0.0, 1.0),
                             teacher_probabilities(jnp.array([[7.0, 3.0]]), 0.0, 1.0), rtol=1e-6)


def make_method(spec=None, pool='flatten', use_bn=True):
  config = ml_collections.ConfigDict({**DINO.example_config(), 'batch_norm': use_bn})
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16, 'pool': pool,
                       'use_bn': use_bn}, DINO.heads(config, 10))
  augment = augment_lib.make_augment(spec) if spec else (lambda key, x: x)
  return DINO(config, model, RunFacts(num_steps=10, batch_size=4, epoch_steps=1, num_examples=4),
              augment=augment)


def test_method_loss_teacher_on_global_views_student_on_all():
  spec = {'views': [{'noise_prob': 1.0, 'noise_std': 0.1}, {'solarize_prob': 1.0}],
          'local': {'crop_scale': (0.2, 0.5)}, 'local_crops': 3, 'local_size': 4}
  # Without BatchNorm (backbone and head) each view's outputs are its own, whatever the
  # grouping.
  method = make_method(spec, pool='global', use_bn=False)
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  extra['target']['params'] = jax.tree.map(lambda x: x * 0.9, extra['target']['params'])
  extra['center'] = jnp.asarray(np.random.default_rng(2).normal(size=32) * 0.1, jnp.float32)
  images = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  model_state = {'batch_stats': {}, 'step': jnp.int32(0), 'extra': extra}
  # One jit for the loss, its gradient and the reference forward passes (eager applies
  # and a separate gradient compile cost half a minute on CPU).
  heads = ('projector', 'prototypes')

  @jax.jit
  def run(params, target, images, key):
    # Gradients with respect to the student's parameters and to the method state (the
    # teacher's parameters and the centre), which must be zero: the teacher is a constant.
    (loss, aux), (grads, extra_grads) = jax.value_and_grad(
        lambda p, ex: method.objective(p, {**model_state, 'extra': ex}, {'image': images}, key),
        argnums=(0, 1), has_aux=True)(params, {**model_state['extra'], 'target': target})
    views = method.augment.views(key, jnp.asarray(images, jnp.float32) / 255)
    apply = lambda v, x: method.model.apply(v, x, heads=heads)['prototypes']
    student = [apply({'params': params}, v) for v in views]
    teacher = [apply(target, v) for v in views[:2]]
    return loss, aux, (grads, extra_grads), student, teacher

  loss, aux, (grads, extra_grads), student, teacher = run(variables['params'], extra['target'], images,
                                           jax.random.key(1))
  student = [np.asarray(s, np.float64) for s in student]
  teacher = [np.asarray(t, np.float64) for t in teacher]
  center = np.asarray(extra['center'], np.float64)
  np.testing.assert_allclose(float(loss), reference_multicrop_loss(student, teacher, center),
                             rtol=1e-4)
  np.testing.assert_allclose(aux.extra['center'],
                             0.9 * center + 0.1 * np.concatenate(teacher).mean(0), rtol=1e-4,
                             atol=1e-6)
  assert set(grads) == {'backbone', 'projector', 'prototypes'}
  for block, tree in grads.items():
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(tree)), block
  assert jax.tree.leaves(extra_grads['target']['params'])
  for leaf in jax.tree.leaves((extra_grads['target']['params'], extra_grads['center'])):
    np.testing.assert_array_equal(leaf, 0.0)   # no gradient to the teacher or the centre


def test_two_views_of_a_plain_augmentation():
  method = make_method()
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  assert set(extra) == {'target', 'center'} and extra['center'].shape == (32,)
  images = np.random.default_rng(4).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(0), 'extra': extra}
  loss, aux = jax.jit(method.objective)(variables['params'], model_state, {'image': images},
                                      jax.random.key(1))
  x = jnp.concatenate([images, images]).astype(jnp.float32) / 255   # identity augmentation
  heads = ('projector', 'prototypes')
  out = jax.jit(lambda v: method.model.apply(v, x, train=True, heads=heads,
                                             mutable=['batch_stats'])[0]['prototypes'])
  s, t = out(variables), out(extra['target'])
  np.testing.assert_allclose(float(loss), H(t[:4], s[4:], 0.0) / 2 + H(t[4:], s[:4], 0.0) / 2,
                             rtol=1e-4)
  # The teacher's BatchNorm statistics moved in train mode; its params did not.
  assert not np.allclose(aux.extra['target']['batch_stats']['backbone']['bn0']['mean'],
                         extra['target']['batch_stats']['backbone']['bn0']['mean'])


def test_after_update_moves_the_teacher_toward_the_student():
  method = make_method()
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  student = jax.tree.map(lambda x: x + 1.0, variables['params'])
  state = TrainState(step=jnp.int32(5), params=student, batch_stats=variables['batch_stats'],
                     opt_state=(), rng=jnp.zeros(2, jnp.uint32), extra=extra)
  new = jax.jit(method.after_update)(state)
  m = 1 - 0.01 * (np.cos(np.pi * 5 / 10) + 1) / 2
  for old, updated, s in zip(jax.tree.leaves(extra['target']['params']),
                             jax.tree.leaves(new.extra['target']['params']),
                             jax.tree.leaves(student)):
    np.testing.assert_allclose(updated, m * np.asarray(old) + (1 - m) * np.asarray(s),
                               rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(new.extra['center'], extra['center'])


def test_last_layer_is_a_cosine_to_each_prototype():
  method = make_method()
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  z = jnp.asarray(np.random.default_rng(5).normal(size=(3, 8)), jnp.float32)
  out = method.model.apply(variables, 'prototypes', z, method='apply_head')
  kernel = np.asarray(variables['params']['prototypes']['kernel'])
  zn = np.asarray(z) / np.linalg.norm(np.asarray(z), axis=1, keepdims=True)
  np.testing.assert_allclose(out, zn @ (kernel / np.linalg.norm(kernel, axis=0)), rtol=1e-5,
                             atol=1e-6)


def test_check_names_the_bad_value():
  for key, value in (('center_momentum', 1.0), ('teacher_temperature', 0.0),
                     ('student_temperature', -0.1), ('momentum', 1.5), ('num_prototypes', 0)):
    with pytest.raises(ValueError, match=key):
      check_block(DINO, ml_collections.ConfigDict({**DINO.example_config(), key: value}))
