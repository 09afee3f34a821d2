"""NNCLR against a numpy transcription of solo-learn's nnclr_loss_func, find_nn and
dequeue_and_enqueue (solo/losses/nnclr.py, solo/methods/nnclr.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.methods.facts import RunFacts
from tlu.methods.nnclr import NNCLR
from tlu.models import build_model
from tlu.unsupervised import queue as queue_lib
from tlu.unsupervised.contrastive import nnclr_loss
from method_block import check_block


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _nnclr_loss_func(nn, p, temperature):
  """solo-learn: F.normalize both, logits = nn @ p.T / T, F.cross_entropy(logits, arange(n))."""
  logits = _normalize(nn) @ _normalize(p).T / temperature
  logits = logits - logits.max(1, keepdims=True)
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  return -np.mean(np.diag(log_p))


def _find_nn(z, queue):
  """solo-learn: idx = (z @ queue.T).max(dim=1)[1]; nn = queue[idx]."""
  idx = np.argmax(z @ queue.T, axis=1)
  return idx, queue[idx]


def _dequeue_and_enqueue(queue, ptr, z):
  """solo-learn (queue_size % batch_size == 0): queue[ptr:ptr + b] = z; ptr = (ptr + b) % Q."""
  queue = queue.copy()
  queue[ptr:ptr + len(z)] = z
  return queue, (ptr + len(z)) % len(queue)


def test_nnclr_loss_is_solo_learns():
  rng = np.random.default_rng(0)
  nn, p = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
  loss, aux = nnclr_loss(jnp.asarray(nn, jnp.float32), jnp.asarray(p, jnp.float32), 0.2)
  np.testing.assert_allclose(float(loss), _nnclr_loss_func(nn, p, 0.2), rtol=1e-5)
  want = np.mean(np.argmax(_normalize(nn) @ _normalize(p).T, 1) == np.arange(6))
  assert float(aux['contrastive_accuracy']) == want


def test_nearest_neighbour_pick_is_exact():
  rng = np.random.default_rng(1)
  z, queue = _normalize(rng.normal(size=(7, 4))), _normalize(rng.normal(size=(20, 4)))
  idx, nn = queue_lib.nearest_neighbours(jnp.asarray(z, jnp.float32),
                                         jnp.asarray(queue, jnp.float32))
  want_idx, want_nn = _find_nn(z, queue)
  np.testing.assert_array_equal(np.asarray(idx), want_idx)
  np.testing.assert_allclose(np.asarray(nn), want_nn, rtol=1e-6)


def test_queue_is_solo_learns_fifo_and_wraps():
  rng = np.random.default_rng(2)
  state = queue_lib.init_queue(jax.random.key(0), 12, 3)
  np.testing.assert_allclose(np.linalg.norm(state['queue'], axis=1), 1.0, rtol=1e-6)
  queue, ptr = np.asarray(state['queue']), 0
  for _ in range(4):   # 4 batches of 4 into 12 rows: the pointer goes round once
    rows = rng.normal(size=(4, 3)).astype(np.float32)
    state = queue_lib.enqueue(state, jnp.asarray(rows))
    queue, ptr = _dequeue_and_enqueue(queue, ptr, rows)
    np.testing.assert_array_equal(np.asarray(state['queue']), queue)
    assert int(state['ptr']) == ptr
  # 5 rows into 12 at pointer 4 (no divisibility): rows 4..8; then 5 more wrap to 9, 10, 11, 0, 1.
  rows = rng.normal(size=(10, 3)).astype(np.float32)
  state = queue_lib.enqueue(queue_lib.enqueue(state, rows[:5]), rows[5:])
  queue[[4, 5, 6, 7, 8, 9, 10, 11, 0, 1]] = rows
  np.testing.assert_array_equal(np.asarray(state['queue']), queue)
  assert int(state['ptr']) == 2


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(NNCLR.example_config())
  model = build_model({'name': 'mlp', 'widths': (16,), 'features': 8}, NNCLR.heads(config, 3))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  return NNCLR(config, model, RunFacts(num_steps=4, batch_size=8, epoch_steps=1),
               augment=brightness)


def test_loss_and_queue_update_are_solo_learns_training_step(method):
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  extra = method.init_extra(variables, jax.random.key(3))
  # A queue of 24 random unit rows with its pointer at 16: the batch's 8 rows fill 16..23.
  extra['queue']['ptr'] = jnp.int32(16)
  images = np.random.default_rng(4).integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': extra}
  rng = jax.random.key(5)
  out = jax.jit(method.loss_fn)(variables['params'], model_state, {'image': images}, rng)
  x = jnp.concatenate(method.views({'image': images}, rng))
  heads = method.model.apply(variables, x, train=True, heads=('projector', 'predictor'),
                             mutable=['batch_stats'])[0]
  z = _normalize(np.asarray(heads['projector'], np.float64))
  p = np.asarray(heads['predictor'], np.float64)
  queue = np.asarray(extra['queue']['queue'], np.float64)
  (z1, z2), (p1, p2) = np.split(z, 2), np.split(p, 2)
  _, nn1 = _find_nn(z1, queue)
  _, nn2 = _find_nn(z2, queue)
  want = _nnclr_loss_func(nn1, p2, 0.2) / 2 + _nnclr_loss_func(nn2, p1, 0.2) / 2
  np.testing.assert_allclose(float(out.loss), want, rtol=1e-4)
  new_queue, new_ptr = _dequeue_and_enqueue(queue, 16, z1)
  np.testing.assert_allclose(np.asarray(out.extra['queue']['queue']), new_queue, atol=1e-6)
  assert int(out.extra['queue']['ptr']) == new_ptr == 0


@pytest.mark.parametrize('key,value', [('temperature', 0.0), ('queue_size', 0),
                                       ('predictor', (16, 4))])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**NNCLR.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}='):
    check_block(NNCLR, config)
