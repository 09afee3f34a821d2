"""Weight imprinting and the L2-normalised head input, against hand-derived values and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlu.models import build_model, heads
from tlu.train import mesh as mesh_lib
from tlu.transfer.imprint import imprint, imprinted_head


def test_imprinted_columns_are_unit_class_means_of_unit_features():
  feats = np.array([[3., 0., 0.], [0., 4., 0.], [0., 0., 2.], [0., 0., 5.]])
  head = imprinted_head(feats, np.array([0, 0, 1, 1]), 2)
  # class 0: mean of (1,0,0) and (0,1,0) = (.5,.5,0) -> (1,1,0)/sqrt2; class 1: (0,0,1).
  np.testing.assert_allclose(head['kernel'], [[2 ** -0.5, 0.], [2 ** -0.5, 0.], [0., 1.]],
                             atol=1e-7)
  np.testing.assert_array_equal(head['bias'], [0., 0.])


def test_a_class_without_examples_is_an_error():
  with pytest.raises(ValueError, match=r'cannot imprint classes \[2\]'):
    imprinted_head(np.ones((2, 4)), np.array([0, 1]), 3)


def test_cosine_head_of_an_imprinted_model_is_the_nearest_class_mean_classifier():
  model = build_model({'name': 'cnn', 'features': 16}, {'head': heads.classifier(3, 7.0)})
  images = jax.random.uniform(jax.random.key(0), (30, 8, 8, 1))
  variables = jax.jit(model.init)(jax.random.key(1), images[:1])
  feats = np.asarray(model.apply(variables, images)['features'], np.float64)
  labels = np.arange(30) % 3
  head = imprinted_head(feats[:9], labels[:9], 3)
  variables = {**variables, 'params': {**variables['params'], 'head': head}}
  logits = np.asarray(model.apply(variables, images, heads=('head',))['head'], np.float64)
  # Independent: 7 * cosine(feature, class mean of unit features), by numpy.
  unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  means = np.stack([unit[:9][labels[:9] == k].mean(0) for k in range(3)])
  cosine = unit @ (means / np.linalg.norm(means, axis=1, keepdims=True)).T
  np.testing.assert_allclose(logits, 7.0 * cosine, rtol=1e-4, atol=1e-5)
  assert np.all(np.abs(logits) <= 7.0 + 1e-4)


def test_imprint_sets_the_head_from_the_labelled_examples_features_and_nothing_else():
  model = build_model({'name': 'cnn', 'widths': (4, 8), 'features': 16},
                      {'head': heads.classifier(3, 5.0)})
  rng = np.random.default_rng(0)
  labelled = [{'image': rng.integers(0, 256, (8, 8, 1), np.uint8), 'label': np.int64(i % 3)}
              for i in range(7)]
  variables = jax.jit(model.init)(jax.random.key(2), jnp.zeros((1, 8, 8, 1)))
  new = imprint(model, variables, labelled, 4, mesh_lib.make_mesh())
  # Independent: the features of uint8 images / 255 in inference mode, means by numpy.
  images = np.stack([ex['image'] for ex in labelled]).astype(np.float32) / 255
  feats = np.asarray(model.apply(variables, images)['features'], np.float64)
  unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  means = np.stack([unit[np.arange(7) % 3 == k].mean(0) for k in range(3)])
  np.testing.assert_allclose(new['params']['head']['kernel'],
                             (means / np.linalg.norm(means, axis=1, keepdims=True)).T,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(new['params']['head']['bias'], np.zeros(3))
  assert new['params']['backbone'] is variables['params']['backbone']
  assert new['batch_stats'] is variables['batch_stats']
