"""`augment_image`: the ops of an `AugmentConfig` applied to one image, in order."""

import dm_pix
import jax
import jax.numpy as jnp

from tlu.data.augment.config import AugmentConfig
from tlu.data.augment.geometric import random_affine, random_resized_crop
from tlu.data.augment.photometric import color_jitter, grayscale, random_gaussian_blur

# Fixed key slots, so switching one op on or off leaves the others' draws as
# they were.
_CROP, _FLIP, _AFFINE, _JITTER, _GRAY, _BLUR, _NOISE, _INVERT = range(8)
_NUM_SLOTS = 8


def augment_image(config: AugmentConfig, key, image):
  """One float32 image (H, W, C) in [0, 1] -> augmented (H, W, C) in [0, 1]; see `AugmentConfig`."""
  slots = jax.random.split(key, _NUM_SLOTS)
  if config.crop_scale is not None:
    image = random_resized_crop(slots[_CROP], image, config.crop_scale,
                                config.crop_ratio)
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
  if config.noise_prob > 0 and config.noise_std > 0:
    image = _with_probability(
        slots[_NOISE], config.noise_prob,
        lambda k, x: x + config.noise_std * jax.random.normal(k, x.shape, x.dtype),
        image)
  if config.invert_prob > 0:
    flip = jax.random.bernoulli(slots[_INVERT], config.invert_prob, image.shape[-1:])
    image = jnp.where(flip, 1.0 - image, image)
  return jnp.clip(image, 0.0, 1.0)


def _with_probability(key, p, fn, image):
  """fn(key, image) with probability p, else image (a select under vmap); same shape."""
  apply_key, fn_key = jax.random.split(key)
  return jnp.where(jax.random.bernoulli(apply_key, p), fn(fn_key, image), image)
