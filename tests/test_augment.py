"""On-device augmentations: reproducible per key, shape-preserving, ops do what they say."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlu.data import augment as augment_lib

PRESET_SHAPES = {
    'simclr_cifar': (4, 32, 32, 3),
    'simclr_imagenet': (2, 40, 40, 3),
    'digits': (16, 8, 8, 1),
    'digits_rgb': (4, 32, 32, 3),
    'digits_polarity': (4, 32, 32, 3),
}


@functools.lru_cache(maxsize=None)
def jitted(config):
  """One compiled augment per config (configs are frozen, hence hashable)."""
  return jax.jit(augment_lib.make_augment(config))


def random_images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


@pytest.mark.parametrize('preset', sorted(PRESET_SHAPES))
def test_preset_is_a_deterministic_function_of_the_key(preset):
  images = random_images(PRESET_SHAPES[preset])
  augment = jitted(preset)
  first = augment(jax.random.key(0), images)
  again = augment(jax.random.key(0), images)
  other = augment(jax.random.key(1), images)
  np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
  assert not np.allclose(np.asarray(first), np.asarray(other))
  # Examples get their own keys: identical inputs, different views.
  same = jnp.broadcast_to(images[:1], images.shape)
  views = np.asarray(augment(jax.random.key(0), same))
  assert not np.allclose(views[0], views[1])


@pytest.mark.parametrize('preset', sorted(PRESET_SHAPES))
def test_preset_keeps_shape_dtype_and_range(preset):
  images = random_images(PRESET_SHAPES[preset])
  out = jitted(preset)(jax.random.key(2), images)
  assert out.shape == images.shape
  assert out.dtype == images.dtype
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_colour_preset_runs_on_one_channel_images():
  images = random_images((2, 16, 16, 1))
  out = jitted('simclr_cifar')(jax.random.key(0), images)
  assert out.shape == images.shape
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_flip_with_probability_one_mirrors_width():
  images = random_images((3, 8, 10, 3))
  out = jitted(augment_lib.AugmentConfig(flip_prob=1.0))(jax.random.key(0), images)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(images)[:, :, ::-1])


def test_invert_flips_whole_channels_independently():
  images = random_images((64, 4, 4, 3))
  x = np.asarray(images)
  out = np.asarray(jitted(augment_lib.AugmentConfig(invert_prob=0.5))(jax.random.key(0), images))
  kept = np.all(np.isclose(out, x), axis=(1, 2))             # (N, C): channel left alone
  inverted = np.all(np.isclose(out, 1.0 - x), axis=(1, 2))   # (N, C): channel is 1 - x
  assert np.all(kept ^ inverted)
  assert 0.3 < inverted.mean() < 0.7
  mixed = inverted.any(axis=1) & ~inverted.all(axis=1)       # some images invert only some channels
  assert mixed.any()
  always = np.asarray(jitted(augment_lib.AugmentConfig(invert_prob=1.0))(jax.random.key(3), images))
  np.testing.assert_allclose(always, 1.0 - x, atol=1e-6)


def test_grayscale_with_probability_one_gives_rec601_luma_in_every_channel():
  images = random_images((2, 6, 6, 3))
  out = np.asarray(jitted(augment_lib.AugmentConfig(grayscale_prob=1.0))(
      jax.random.key(0), images))
  luma = np.asarray(images) @ np.array([0.2989, 0.5870, 0.1140])
  for channel in range(3):
    np.testing.assert_allclose(out[..., channel], luma, atol=1e-6)


def test_identity_config_returns_the_input():
  images = random_images((2, 8, 8, 3))
  out = jitted(augment_lib.AugmentConfig())(jax.random.key(0), images)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(images))


def left_heavy_digits():
  """Bright left half, dark right half: a flip would make the right side heavier."""
  images = np.zeros(PRESET_SHAPES['digits'], np.float32)
  images[:, :, :4] = 1.0
  return jnp.asarray(images)


def right_minus_left(images):
  images = np.asarray(images)
  return images[:, :, 4:].sum(axis=(1, 2, 3)) - images[:, :, :4].sum(axis=(1, 2, 3))


def test_digits_preset_never_flips():
  out = np.asarray(jitted('digits')(jax.random.key(0), left_heavy_digits()))
  assert np.all(right_minus_left(out) < 0)
  # The check has power: the same views, mirrored, all fail it.
  assert np.all(right_minus_left(out[:, :, ::-1]) > 0)


def test_jit_matches_eager():
  images = random_images(PRESET_SHAPES['digits'], seed=3)
  eager = augment_lib.make_augment('digits')(jax.random.key(4), images)
  compiled = jitted('digits')(jax.random.key(4), images)
  np.testing.assert_allclose(np.asarray(eager), np.asarray(compiled), atol=1e-5)


def test_two_views_are_the_augment_under_split_keys():
  images = random_images(PRESET_SHAPES['digits'])
  augment = jitted('digits')
  view1, view2 = augment_lib.two_views(augment, jax.random.key(5), images)
  key1, key2 = jax.random.split(jax.random.key(5))
  np.testing.assert_array_equal(np.asarray(view1), np.asarray(augment(key1, images)))
  np.testing.assert_array_equal(np.asarray(view2), np.asarray(augment(key2, images)))
  assert not np.allclose(np.asarray(view1), np.asarray(view2))


def test_config_mapping_overrides_a_preset_and_rejects_unknown_keys():
  config = augment_lib.resolve_config(
      {'preset': 'simclr_cifar', 'blur_prob': 0.5, 'crop_scale': [0.2, 1.0]})
  assert config.blur_prob == 0.5 and config.crop_scale == (0.2, 1.0)
  assert config.jitter_prob == augment_lib.PRESETS['simclr_cifar'].jitter_prob
  with pytest.raises(ValueError, match='blur_probability'):
    augment_lib.resolve_config({'blur_probability': 0.5})
  with pytest.raises(ValueError, match='simclr_cifer'):
    augment_lib.make_augment('simclr_cifer')
