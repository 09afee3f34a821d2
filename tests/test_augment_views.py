"""Solarization, resized crops and multi-view specs (per-view pipelines, local crops)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.data import augment as augment_lib
from tlu.data.augment import AugmentConfig, MultiView


def random_images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def numpy_resized_crop(x, box, size):
  """Antialiased bilinear resampling in numpy: output pixel i of a box [start, start + length)
  weighs input pixel j by the triangle max(0, 1 - |j + 0.5 - c_i| min(s, 1)), c_i = start +
  (i + 0.5) / s, s = size / length, the weights of in-bound pixels normalised to sum 1."""
  def weights(n_in, start, length, n_out):
    s = n_out / length
    centres = start + (np.arange(n_out) + 0.5) / s
    w = np.maximum(0.0, 1 - np.abs(np.arange(n_in)[None] + 0.5 - centres[:, None]) * min(s, 1))
    return w / w.sum(axis=1, keepdims=True)
  top, left, height, width = box
  rows, cols = weights(x.shape[0], top, height, size[0]), weights(x.shape[1], left, width, size[1])
  return np.einsum('ij,jkc,lk->ilc', rows, np.asarray(x, np.float64), cols)


def test_solarize_inverts_pixels_at_or_above_the_threshold():
  x = jnp.array([0.0, 0.2, 0.49, 0.5, 0.7, 1.0])
  np.testing.assert_allclose(augment_lib.solarize(x), [0.0, 0.2, 0.49, 0.5, 0.3, 0.0], atol=1e-7)
  np.testing.assert_allclose(augment_lib.solarize(x, 0.25), [0.0, 0.2, 0.51, 0.5, 0.3, 0.0],
                             atol=1e-7)


def test_solarize_probability_one_and_zero_through_the_pipeline():
  images = random_images((3, 6, 6, 3))
  x = np.asarray(images)
  out = augment_lib.make_augment({'solarize_prob': 1.0})(jax.random.key(0), images)
  np.testing.assert_allclose(out, np.where(x >= 0.5, 1 - x, x), atol=1e-7)
  out = augment_lib.make_augment({'solarize_prob': 1.0, 'solarize_threshold': 0.8})(
      jax.random.key(0), images)
  np.testing.assert_allclose(out, np.where(x >= 0.8, 1 - x, x), atol=1e-7)
  np.testing.assert_array_equal(augment_lib.make_augment({'solarize_prob': 0.0})(
      jax.random.key(0), images), x)


def test_solarize_with_probability_half_is_all_or_nothing_per_image():
  images = random_images((64, 4, 4, 1))
  x = np.asarray(images)
  out = np.asarray(augment_lib.make_augment({'solarize_prob': 0.5})(jax.random.key(1), images))
  solarized = np.all(np.isclose(out, np.where(x >= 0.5, 1 - x, x)), axis=(1, 2, 3))
  kept = np.all(out == x, axis=(1, 2, 3))
  assert np.all(solarized | kept) and 0.3 < solarized.mean() < 0.7


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_solarize_leaves_the_other_ops_draws_as_they_were():
  images = random_images((8, 8, 8, 1))
  base = {'preset': 'digits', 'noise_prob': 1.0}
  plain = np.asarray(augment_lib.make_augment(base)(jax.random.key(2), images))
  with_solarize = augment_lib.make_augment({**base, 'solarize_prob': 1.0, 'solarize_threshold':
                                            2.0})(jax.random.key(2), images)   # never fires
  np.testing.assert_array_equal(plain, np.asarray(with_solarize))


@pytest.mark.parametrize('box,size', [((2.0, 1.0, 4.0, 4.0), (4, 4)),       # a plain slice
                                      ((0.0, 0.0, 8.0, 8.0), (4, 4)),       # shrink by 2
                                      ((1.5, 2.25, 5.0, 4.0), (4, 3)),      # real corners
                                      ((0.5, 0.5, 3.0, 3.0), (6, 6))])      # enlarge
def test_resized_crop_matches_numpy_bilinear(box, size):
  x = random_images((8, 8, 2))
  out = augment_lib.resized_crop(x, box, size)
  assert out.shape == (*size, 2)
  np.testing.assert_allclose(out, numpy_resized_crop(x, box, size), atol=1e-6)
  if box == (2.0, 1.0, 4.0, 4.0):
    np.testing.assert_allclose(out, np.asarray(x)[2:6, 1:5], atol=1e-6)


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_multi_view_views_are_each_pipeline_under_its_own_key():
  spec = {'views': [{'solarize_prob': 1.0}, {}],
          'local': {'crop_scale': (1.0, 1.0), 'crop_ratio': (1.0, 1.0)},
          'local_crops': 3, 'local_size': 4}
  augment = augment_lib.make_augment(spec)
  assert isinstance(augment, MultiView) and augment.num_global == 2 and augment.num_views == 5
  images = random_images((2, 8, 8, 1))
  x = np.asarray(images)
  views = jax.jit(augment.views)(jax.random.key(0), images)
  assert [v.shape for v in views] == [(2, 8, 8, 1)] * 2 + [(2, 4, 4, 1)] * 3
  np.testing.assert_allclose(views[0], np.where(x >= 0.5, 1 - x, x), atol=1e-7)
  np.testing.assert_array_equal(views[1], x)
  # A crop of the whole square image, resampled to 4x4: numpy's 2x antialiased shrink.
  for local in views[2:]:
    for n in range(2):
      np.testing.assert_allclose(local[n], numpy_resized_crop(x[n], (0, 0, 8, 8), (4, 4)),
                                 atol=1e-6)
  # View v is the batch augmentation of config v under key v of split(key, 5).
  keys = jax.random.split(jax.random.key(0), 5)
  np.testing.assert_array_equal(
      views[3], augment_lib.batch.augment_batch(augment.local_config, keys[3], images, (4, 4)))


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_local_crops_are_random_per_crop_and_per_image():
  augment = augment_lib.make_augment({'views': [{}], 'local': 'dino_local', 'local_crops': 2,
                                      'local_size': (3, 5)})
  same = jnp.broadcast_to(random_images((1, 12, 12, 3)), (2, 12, 12, 3))
  _, crop1, crop2 = augment.views(jax.random.key(0), same)
  assert crop1.shape == (2, 3, 5, 3)
  assert not np.allclose(crop1, crop2) and not np.allclose(crop1[0], crop1[1])
  assert float(crop1.min()) >= 0 and float(crop1.max()) <= 1


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_two_global_views_without_locals_are_two_views_of_their_pipelines():
  images = random_images((4, 8, 8, 1))
  augment = augment_lib.make_augment(ml_collections.ConfigDict(
      {'views': ['digits', {'preset': 'digits', 'solarize_prob': 0.5}]}))
  views = augment_lib.views(augment, jax.random.key(3), images)
  key1, key2 = jax.random.split(jax.random.key(3))
  np.testing.assert_array_equal(views[0], augment_lib.make_augment('digits')(key1, images))
  np.testing.assert_array_equal(views[1], augment_lib.make_augment(
      {'preset': 'digits', 'solarize_prob': 0.5})(key2, images))
  # Called as a plain augment, it is the first view's pipeline.
  np.testing.assert_array_equal(augment(key1, images), views[0])
  assert augment_lib.num_global_views(augment) == 2
  assert augment_lib.num_global_views(augment_lib.make_augment('digits')) == 2


def test_resize_without_a_crop_resamples_the_whole_image():
  images = random_images((2, 8, 8, 1))
  augment = augment_lib.make_augment({'views': [{}], 'local': {}, 'local_crops': 1,
                                      'local_size': 4})
  local = augment.views(jax.random.key(0), images)[1]
  for n in range(2):
    np.testing.assert_allclose(local[n], numpy_resized_crop(images[n], (0, 0, 8, 8), (4, 4)),
                               atol=1e-6)


@pytest.mark.parametrize('spec,match', [
    ({'views': []}, 'augment.views'),
    ({'views': 'digits'}, 'augment.views'),
    ({'views': ['digits'], 'local_crops': 2}, 'needs augment.local'),
    ({'views': ['digits'], 'local': 'digits', 'local_crops': 2, 'local_size': 0}, 'local_size'),
    ({'views': ['digits'], 'local_crops': -1}, 'local_crops'),
    ({'views': ['digits'], 'blur_prob': 0.5}, 'blur_prob'),
    ({'views': [{'blur_prob': 1.5}]}, 'blur_prob'),
    ({'views': [{'blurr_prob': 0.5}]}, 'blurr_prob'),
    ({'views': ['digits'], 'local': {'solarize_prob': 2.0}, 'local_crops': 1, 'local_size': 4},
     'solarize_prob'),
])
def test_multi_view_spec_errors_name_the_key(spec, match):
  with pytest.raises(ValueError, match=match):
    augment_lib.make_augment(spec)


def test_plain_specs_still_build_functions():
  augment = augment_lib.make_augment({'preset': 'digits'})
  assert callable(augment) and not hasattr(augment, 'views')
  assert not augment_lib.is_multi_view(AugmentConfig())
  assert augment_lib.is_multi_view(ml_collections.ConfigDict({'views': ['digits']}))
