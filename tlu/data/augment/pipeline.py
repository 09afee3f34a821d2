"""`augment_image`: the ops of an `AugmentConfig` applied to one image, in order."""

import dm_pix
import jax
import jax.numpy as jnp

from tlu.data.augment.config import AugmentConfig
from tlu.data.augment.cutout import cutout
from tlu.data.augment.geometric import random_affine, random_resized_crop, resized_crop
from tlu.data.augment.photometric import (color_jitter, grayscale, random_gaussian_blur,
                                          solarize)
from tlu.data.augment.randaugment import rand_augment, random_shift

# Fixed key slots, so switching one op on or off leaves the others' draws as
# they were.
_CROP, _FLIP, _AFFINE, _JITTER, _GRAY, _BLUR, _NOISE, _INVERT = range(8)
_NUM_SLOTS = 8
# Ops added later fold their slot into the key instead, so the draws of the eight
# above (and every earlier run's views) stay what they were.
_SOLARIZE, _SHIFT, _RANDAUGMENT, _CUTOUT = 8, 9, 10, 11


def augment_image(config: AugmentConfig, key, image, size=None):
  """One float32 image (H, W, C) in [0, 1] -> augmented (h, w, C) in [0, 1]; see `AugmentConfig`.

  size: output (h, w), default (H, W). A different size resamples the crop to it (or,
  without a crop, the whole image) before the other ops, which then see (h, w).
  """
  slots = jax.random.split(key, _NUM_SLOTS)
  height, width = image.shape[0], image.shape[1]
  size = (height, width) if size is None else (int(size[0]), int(size[1]))
  if config.crop_scale is not None:
    image = random_resized_crop(slots[_CROP], image, config.crop_scale,
                                config.crop_ratio, size=size)
  elif size != (height, width):
    image = resized_crop(image, (0.0, 0.0, float(height), float(width)), size)
  if config.flip_prob > 0:
    image = dm_pix.random_flip_left_right(slots[_FLIP], image,
                                          probability=config.flip_prob)
  if config.affine_prob > 0:
    image = _with_probability(
        slots[_AFFINE], config.affine_prob,
        lambda k, x: random_affine(k, x, config.rotate_deg, config.shear_deg,
                                   config.translate_frac, config.affine_fill),
        image)
  if config.jitter_prob > 0:
    image = _with_probability(
        slots[_JITTER], config.jitter_prob,
        lambda k, x: color_jitter(k, x, config.brightness, config.contrast,
                                  config.saturation, config.hue,
                                  config.jitter_random_order),
        image)
  if config.grayscale_prob > 0:
    image = _with_probability(slots[_GRAY], config.grayscale_prob,
                              lambda _, x: grayscale(x), image)
  if config.blur_prob > 0:
    kernel_size = max(3, round(config.blur_kernel_frac * min(image.shape[:2])))
    image = _with_probability(
        slots[_BLUR], config.blur_prob,
        lambda k, x: random_gaussian_blur(k, x, config.blur_sigma, kernel_size),
        image)
  if config.solarize_prob > 0:
    image = _with_probability(
        jax.random.fold_in(key, _SOLARIZE), config.solarize_prob,
        lambda _, x: solarize(x, config.solarize_threshold), image)
  if config.noise_prob > 0 and config.noise_std > 0:
    image = _with_probability(
        slots[_NOISE], config.noise_prob,
        lambda k, x: x + config.noise_std * jax.random.normal(k, x.shape, x.dtype),
        image)
  if config.invert_prob > 0:
    flip = jax.random.bernoulli(slots[_INVERT], config.invert_prob, image.shape[-1:])
    image = jnp.where(flip, 1.0 - image, image)
  if config.shift_frac > 0:
    image = random_shift(jax.random.fold_in(key, _SHIFT), image, config.shift_frac)
  if config.randaugment_ops > 0:
    image = rand_augment(jax.random.fold_in(key, _RANDAUGMENT), image, config.randaugment_ops)
  if config.cutout_frac > 0:
    image = cutout(jax.random.fold_in(key, _CUTOUT), image, config.cutout_frac)
  return jnp.clip(image, 0.0, 1.0)


def _with_probability(key, p, fn, image):
  """fn(key, image) with probability p, else image (a select under vmap); same shape."""
  apply_key, fn_key = jax.random.split(key)
  return jnp.where(jax.random.bernoulli(apply_key, p), fn(fn_key, image), image)
