"""Photometric ops on one (H, W, C) image in [0, 1]: colour jitter, grayscale, blur, solarize."""

import dm_pix
import jax
import jax.numpy as jnp


def color_jitter(key, image, brightness, contrast, saturation, hue,
                 random_order=True):
  """torchvision-style `ColorJitter` on one (H, W, C) image in [0, 1].

  Brightness multiplies (torchvision's meaning of the strengths; dm-pix's
  `adjust_brightness` adds a delta, TF's meaning). Contrast, saturation and hue
  use dm-pix (`adjust_contrast` blends with each channel's mean, saturation and
  hue go through HSV). Each op's output is clipped to [0, 1] before the next,
  as torchvision does. Saturation and hue are skipped for 1-channel images.
  """
  rgb = image.shape[-1] == 3
  ops = []
  if brightness > 0:
    ops.append((lambda x, f: x * f, _factor_range(brightness)))
  if contrast > 0:
    ops.append((lambda x, f: dm_pix.adjust_contrast(x, f),
                _factor_range(contrast)))
  if saturation > 0 and rgb:
    ops.append((lambda x, f: dm_pix.adjust_saturation(x, f),
                _factor_range(saturation)))
  if hue > 0 and rgb:
    ops.append((lambda x, d: dm_pix.adjust_hue(x, d), (-hue, hue)))
  if not ops:
    return image
  k_order, k_values = jax.random.split(key)
  lows = jnp.array([low for _, (low, _) in ops])
  highs = jnp.array([high for _, (_, high) in ops])
  values = jax.random.uniform(k_values, (len(ops),), minval=lows, maxval=highs)
  branches = [lambda x, v, i=i, op=op: jnp.clip(op(x, v[i]), 0.0, 1.0)
              for i, (op, _) in enumerate(ops)]
  if random_order and len(ops) > 1:
    order = jax.random.permutation(k_order, len(ops))
    for step in range(len(ops)):
      image = jax.lax.switch(order[step], branches, image, values)
  else:
    for branch in branches:
      image = branch(image, values)
  return image


def _factor_range(strength):
  """Jitter strength s -> torchvision's factor range (max(0, 1 - s), 1 + s)."""
  return (max(0.0, 1.0 - strength), 1.0 + strength)


def grayscale(image):
  """Rec.601 luma of an RGB (H, W, 3) image, tiled back to (H, W, 3); (H, W, 1) as is."""
  if image.shape[-1] == 1:
    return image
  return dm_pix.rgb_to_grayscale(image, keep_dims=True)


def random_gaussian_blur(key, image, sigma_range, kernel_size):
  """Gaussian blur of (H, W, C) with sigma ~ U(sigma_range) (SimCLR Appendix A).

  dm-pix convolves with zero padding, which darkens the border; dividing by the
  blur of an all-ones image renormalises the truncated kernel there.
  """
  sigma = jax.random.uniform(key, minval=sigma_range[0], maxval=sigma_range[1])
  blurred = dm_pix.gaussian_blur(image, sigma, kernel_size)
  weight = dm_pix.gaussian_blur(jnp.ones_like(image[..., :1]), sigma,
                                kernel_size)
  return blurred / weight


def solarize(image, threshold=0.5):
  """Pixels >= threshold inverted (x -> 1 - x), the others kept (PIL's `ImageOps.solarize`,
  BYOL's solarization at 128 of 255). Any shape, values in [0, 1]."""
  return jnp.where(image >= threshold, 1.0 - image, image)
