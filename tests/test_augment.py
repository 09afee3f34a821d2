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


# ----------------------------------------------------------------------------- ops vs numpy / PIL


def test_brightness_and_contrast_jitter_are_torchvisions_formulas_at_the_drawn_factor():
  x = np.random.default_rng(1).uniform(0.1, 0.6, (6, 5, 3)).astype(np.float32)
  means = x.mean(axis=(0, 1))
  jitter = jax.jit(lambda k, img, b, c: augment_lib.color_jitter(k, img, b, c, 0.0, 0.0,
                                                                 random_order=False),
                   static_argnums=(2, 3))
  factors = []
  for seed in range(24):
    out = np.asarray(jitter(jax.random.key(seed), x, 0.4, 0.0), np.float64)
    f = out[0, 0, 0] / x[0, 0, 0]              # the factor this key drew
    np.testing.assert_allclose(out, np.clip(x * f, 0, 1), rtol=1e-5, atol=1e-6)
    factors.append(f)
    out = np.asarray(jitter(jax.random.key(seed), x, 0.0, 0.5), np.float64)
    i = np.unravel_index(np.argmax(np.abs(x - means)), x.shape)
    f = (out[i] - means[i[2]]) / (x[i] - means[i[2]])   # blend with each channel's mean
    np.testing.assert_allclose(out, np.clip((x - means) * f + means, 0, 1), rtol=1e-4,
                               atol=1e-5)
    assert 0.5 - 1e-5 <= f <= 1.5 + 1e-5
  # Brightness factors ~ U(0.6, 1.4): inside the range, spread over it.
  assert 0.6 - 1e-5 <= min(factors) < 0.75 and 1.25 < max(factors) <= 1.4 + 1e-5
  assert abs(np.mean(factors) - 1.0) < 0.1


def _blur_by_definition(image, sigma, kernel_size):
  """Direct 2-D Gaussian weighting over the in-image part of the k x k window, renormalised
  (numpy, one output pixel at a time)."""
  r = kernel_size // 2
  g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  h, w, _ = image.shape
  out = np.zeros_like(image, dtype=np.float64)
  for i in range(h):
    for j in range(w):
      rows, cols = np.arange(i - r, i + r + 1), np.arange(j - r, j + r + 1)
      wr, wc = g[(rows >= 0) & (rows < h)], g[(cols >= 0) & (cols < w)]
      patch = image[rows[(rows >= 0) & (rows < h)]][:, cols[(cols >= 0) & (cols < w)]]
      weights = np.outer(wr, wc)[..., None]
      out[i, j] = (weights * patch).sum((0, 1)) / weights.sum()
  return out


@pytest.mark.parametrize('sigma', [0.6, 1.5])
def test_gaussian_blur_is_the_renormalised_gaussian_window(sigma):
  x = np.random.default_rng(2).uniform(size=(9, 7, 2)).astype(np.float32)
  # A range of one value: the drawn sigma is that value.
  got = jax.jit(augment_lib.random_gaussian_blur, static_argnums=(2, 3))(
      jax.random.key(0), jnp.asarray(x), (sigma, sigma), 5)
  np.testing.assert_allclose(got, _blur_by_definition(x.astype(np.float64), sigma, 5),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('box, size', [((1.0, 2.0, 10.0, 8.0), (5, 4)),     # shrink
                                       ((3.5, 0.25, 6.0, 9.5), (12, 19))])  # enlarge
def test_resized_crop_matches_pillows_box_resize(box, size):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  x = np.random.default_rng(3).uniform(size=(16, 12)).astype(np.float32)
  top, left, h, w = box
  want = np.asarray(Image.fromarray(x, mode='F').resize(
      (size[1], size[0]), Image.BILINEAR, box=(left, top, left + w, top + h)))
  got = jax.jit(augment_lib.resized_crop, static_argnums=2)(jnp.asarray(x[..., None]),
                                                             box, size)[..., 0]
  np.testing.assert_allclose(got, want, atol=2e-3)


def _torchvision_boxes(rng, n, height, width, scale, ratio, attempts=10):
  """(area fraction, aspect) of n boxes drawn by torchvision's RandomResizedCrop.get_params
  (real-valued sizes, as tlu's), in numpy."""
  out = []
  for _ in range(n):
    for _ in range(attempts):
      area = height * width * rng.uniform(*scale)
      aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
      w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
      if w <= width and h <= height:
        break
    else:
      w, h = width, height   # square image, ratio range holding 1: the whole image
    out.append((w * h / (height * width), w / h))
  return np.array(out)


def test_random_resized_crop_draws_boxes_as_torchvision_does():
  # A ramp image: the crop of a linear function is linear, so each output's interior slope
  # gives the box's size and its offset the box's position.
  n, side, scale, ratio = 300, 32, (0.08, 1.0), (3 / 4, 4 / 3)
  ramp = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing='ij'), -1)
  crop = jax.jit(jax.vmap(lambda k: augment_lib.random_resized_crop(
      k, jnp.asarray(ramp, jnp.float32), scale, ratio)))
  out = np.asarray(crop(jax.random.split(jax.random.key(0), n)), np.float64)
  rows, cols = out[:, 8:24, 16, 0], out[:, 16, 8:24, 1]   # away from the edges
  crop_h = (rows[:, -1] - rows[:, 0]) / 15 * side
  crop_w = (cols[:, -1] - cols[:, 0]) / 15 * side
  top = out[:, 8, 16, 0] + 0.5 - 8.5 * crop_h / side
  left = out[:, 16, 8, 1] + 0.5 - 8.5 * crop_w / side
  assert np.all((top > -1e-3) & (top + crop_h < side + 1e-3))
  assert np.all((left > -1e-3) & (left + crop_w < side + 1e-3))
  area, aspect = crop_w * crop_h / side ** 2, crop_w / crop_h
  assert np.all((area > scale[0] - 1e-3) & (area < scale[1] + 1e-3))
  assert np.all((aspect > ratio[0] - 1e-3) & (aspect < ratio[1] + 1e-3))
  want = _torchvision_boxes(np.random.default_rng(0), 20000, side, side, scale, ratio)
  for got, ref in ((area, want[:, 0]), (np.log(aspect), np.log(want[:, 1]))):
    assert abs(got.mean() - ref.mean()) < 4 * ref.std() / np.sqrt(n)
    assert abs(np.median(got) - np.median(ref)) < 6 * ref.std() / np.sqrt(n)
