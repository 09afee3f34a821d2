"""Supervised contrastive loss against a numpy transcription of Khosla et al. 2020, eq. 2."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.methods.facts import RunFacts
from tlu.methods.supcon import SupCon, supcon_loss
from tlu.models import build_model
from tlu.unsupervised.contrastive import nt_xent
from method_block import check_block


def numpy_l_out(z, labels, tau):
  """Eq. 2 anchor by anchor, divided by the number of anchors."""
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  total = 0.0
  for i in range(len(z)):
    a = [k for k in range(len(z)) if k != i]
    p = [k for k in a if labels[k] == labels[i]]
    denominator = sum(np.exp(z[i] @ z[k] / tau) for k in a)
    total += -sum(np.log(np.exp(z[i] @ z[k] / tau) / denominator) for k in p) / len(p)
  return total / len(z)


def test_loss_matches_equation_2():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 6)
  z = rng.normal(size=(12, 5))
  loss, aux = supcon_loss(jnp.asarray(z, jnp.float32), jnp.asarray(np.tile(labels, 2)), 0.1)
  np.testing.assert_allclose(float(loss), numpy_l_out(z, np.tile(labels, 2), 0.1), rtol=1e-5)
  zn = z / np.linalg.norm(z, axis=1, keepdims=True)
  sim = zn @ zn.T - 10 * np.eye(12)
  assert np.isclose(float(aux['contrastive_accuracy']), np.mean(
      np.tile(labels, 2)[sim.argmax(1)] == np.tile(labels, 2)))


def test_distinct_labels_give_nt_xent():
  rng = np.random.default_rng(1)
  z1, z2 = (jnp.asarray(rng.normal(size=(5, 4)), jnp.float32) for _ in range(2))
  loss, _ = supcon_loss(jnp.concatenate([z1, z2]), jnp.tile(jnp.arange(5), 2), 0.5)
  np.testing.assert_allclose(float(loss), float(nt_xent(z1, z2, 0.5)[0]), rtol=1e-5)


def test_more_positives_of_the_same_class_change_the_loss():
  rng = np.random.default_rng(2)
  z = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
  distinct, _ = supcon_loss(z, jnp.tile(jnp.arange(4), 2), 0.1)
  shared, _ = supcon_loss(z, jnp.tile(jnp.array([0, 0, 1, 1]), 2), 0.1)
  assert not np.isclose(float(distinct), float(shared))


def test_method_reads_labels_and_trains_on_two_views():
  assert SupCon.inputs == 'labelled'
  config = ml_collections.ConfigDict(SupCon.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16},
                      SupCon.heads(config, 3))
  method = SupCon(config, model, RunFacts(num_steps=4, batch_size=4, epoch_steps=1, num_examples=4),
                  augment=lambda key, x: x)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  images = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  labels = np.array([0, 1, 0, 2])
  model_state = {'batch_stats': variables['batch_stats'], 'step': 0, 'extra': {}}
  loss, _ = method.objective(variables['params'], model_state,
                           {'image': images, 'label': labels}, jax.random.key(1))
  x = jnp.concatenate([images, images]).astype(jnp.float32) / 255
  z = model.apply(variables, x, train=True, heads=('projector',),
                  mutable=['batch_stats'])[0]['projector']
  np.testing.assert_allclose(float(loss), numpy_l_out(np.asarray(z, np.float64),
                                                      np.tile(labels, 2), 0.1), rtol=1e-4)


def test_check_names_the_bad_value():
  with pytest.raises(ValueError, match='temperature'):
    check_block(SupCon, ml_collections.ConfigDict({**SupCon.example_config(), 'temperature': 0.0}))
