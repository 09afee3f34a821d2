"""ReSSL against a numpy transcription of solo-learn's ressl_loss_func and training_step
(solo/losses/ressl.py, solo/methods/ressl.py): query of view 1, momentum key of view 2,
the queue, and the keys enqueued."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.methods.facts import RunFacts
from tlu.methods.ressl import ReSSL
from tlu.models import build_model
from tlu.unsupervised.contrastive import ressl_loss
from method_block import check_block


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _softmax(x):
  x = x - x.max(1, keepdims=True)
  return np.exp(x) / np.exp(x).sum(1, keepdims=True)


def _ressl_loss_func(q, k, queue, tq, tk):
  """solo-learn: logits = einsum('nc,kc->nk'); -sum(softmax(l_k / tk) * log_softmax(l_q / tq)).mean()."""
  return -np.mean(np.sum(_softmax(k @ queue.T / tk) * np.log(_softmax(q @ queue.T / tq)), 1))


def test_ressl_loss_is_solo_learns_and_the_teacher_gets_no_gradient():
  rng = np.random.default_rng(0)
  q, k = _normalize(rng.normal(size=(5, 4))), _normalize(rng.normal(size=(5, 4)))
  queue = _normalize(rng.normal(size=(9, 4)))
  args = [jnp.asarray(a, jnp.float32) for a in (q, k, queue)]
  np.testing.assert_allclose(float(ressl_loss(*args, 0.1, 0.04)),
                             _ressl_loss_func(q, k, queue, 0.1, 0.04), rtol=1e-5)
  grads = jax.grad(lambda q, k, queue: ressl_loss(q, k, queue, 0.1, 0.04), (0, 1, 2))(*args)
  assert np.any(np.asarray(grads[0]) != 0)
  assert not np.any(np.asarray(grads[1])) and not np.any(np.asarray(grads[2]))


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(ReSSL.example_config())
  model = build_model({'name': 'mlp', 'widths': (16,), 'features': 8}, ReSSL.heads(config, 3))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  return ReSSL(config, model, RunFacts(num_steps=4, batch_size=8, epoch_steps=1),
               augment=brightness)


def test_loss_and_queue_update_are_solo_learns_training_step(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  extra = method.init_extra(variables, jax.random.key(3))
  assert set(extra['target']['params']) == {'backbone', 'projector'}
  # A teacher that differs from the student, as after some steps; queue pointer at 8.
  extra['target']['params'] = jax.tree.map(lambda x: x * 0.9, extra['target']['params'])
  extra['queue']['ptr'] = jnp.int32(8)
  images = np.random.default_rng(4).integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': extra}
  rng = jax.random.key(5)
  out = jax.jit(method.loss_fn)(variables['params'], model_state, {'image': images}, rng)
  x = jnp.concatenate(method.views({'image': images}, rng))
  forward = lambda v: method.model.apply(v, x, train=True, heads=('projector',),
                                         mutable=['batch_stats'])[0]['projector']
  z, zt = forward(variables), forward(extra['target'])
  q = _normalize(np.asarray(z, np.float64))[:8]    # view 1, student
  k = _normalize(np.asarray(zt, np.float64))[8:]   # view 2, teacher
  queue = np.asarray(extra['queue']['queue'], np.float64)
  np.testing.assert_allclose(float(out.loss), _ressl_loss_func(q, k, queue, 0.1, 0.04),
                             rtol=1e-4)
  want_queue = queue.copy()
  want_queue[8:16] = k   # solo-learn's dequeue_and_enqueue(k): queue[ptr:ptr + b] = k
  np.testing.assert_allclose(np.asarray(out.extra['queue']['queue']), want_queue, atol=1e-6)
  assert int(out.extra['queue']['ptr']) == 16


@pytest.mark.parametrize('key,value', [('temperature_q', 0.0), ('temperature_k', -1.0),
                                       ('momentum', 1.5), ('queue_size', 0),
                                       ('projector', (0,))])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**ReSSL.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}='):
    check_block(ReSSL, config)
