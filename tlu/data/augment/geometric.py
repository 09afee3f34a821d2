"""Geometric ops on one (H, W, C) image: random resized crop and random affine warp."""

import math

import dm_pix
import jax
import jax.numpy as jnp


def random_resized_crop(key, image, scale, ratio, num_attempts=10, size=None):
  """Inception-style crop of (H, W, C) resampled to `size` (h, w) (default: back to (H, W)).

  Follows torchvision's `RandomResizedCrop` (Szegedy et al., 2015): up to
  `num_attempts` boxes with area fraction ~ U(scale) and log aspect ratio
  ~ U(log ratio) are drawn, the first that fits is used; if none fits, the
  central crop with the aspect ratio clamped to `ratio`. Boxes have real-valued
  corners (no rounding to pixels); resampling is `resized_crop`'s. A smaller `size`
  gives multi-crop's local views (Caron et al. 2020) in one resampling.
  """
  height, width = image.shape[0], image.shape[1]
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = height * width * jax.random.uniform(
      k_area, (num_attempts,), minval=scale[0], maxval=scale[1])
  aspect = jnp.exp(jax.random.uniform(
      k_ratio, (num_attempts,), minval=math.log(ratio[0]),
      maxval=math.log(ratio[1])))
  crop_w = jnp.sqrt(area * aspect)
  crop_h = jnp.sqrt(area / aspect)
  fits = (crop_w <= width) & (crop_h <= height)

  # torchvision's fallback; static because H, W and ratio are.
  in_ratio = width / height
  if in_ratio < ratio[0]:
    fallback_w, fallback_h = width, width / ratio[0]
  elif in_ratio > ratio[1]:
    fallback_w, fallback_h = height * ratio[1], height
  else:
    fallback_w, fallback_h = width, height
  first = jnp.argmax(fits)
  found = fits[first]
  crop_w = jnp.where(found, crop_w[first], fallback_w)
  crop_h = jnp.where(found, crop_h[first], fallback_h)
  top = jnp.where(found, jax.random.uniform(k_y) * (height - crop_h),
                  (height - crop_h) / 2)
  left = jnp.where(found, jax.random.uniform(k_x) * (width - crop_w),
                   (width - crop_w) / 2)

  return resized_crop(image, (top, left, crop_h, crop_w), size or (height, width))


def resized_crop(image, box, size):
  """The box (top, left, height, width) of (H, W, C), in pixels, resampled to `size` (h, w).

  Real-valued box corners; bilinear, antialiased when shrinking (a triangle filter
  stretched by the shrink factor, `jax.image.scale_and_translate`). Returns (h, w, C).
  """
  top, left, crop_h, crop_w = box
  # scale_and_translate maps input coordinate u to u * scale + translation
  # (pixel edges at integers), so the box [top, top + crop_h) lands on [0, h).
  scale = jnp.stack([size[0] / crop_h, size[1] / crop_w]).astype(jnp.float32)
  translation = -jnp.stack([top, left]) * scale
  return jax.image.scale_and_translate(
      image, (size[0], size[1], image.shape[2]), spatial_dims=(0, 1), scale=scale,
      translation=translation, method='linear', antialias=True)


def random_affine(key, image, rotate_deg, shear_deg, translate_frac,
                  fill='constant'):
  """Random rotation, horizontal shear and translation of (H, W, C) about its centre.

  The forward map is x -> R(theta) S(phi) (x - c) + c + t on (row, col) pixel
  coordinates; dm-pix resamples by pulling, so it gets the inverse.
  """
  height, width = image.shape[0], image.shape[1]
  k_rot, k_shear, k_shift = jax.random.split(key, 3)
  theta = jnp.deg2rad(jax.random.uniform(k_rot, minval=-rotate_deg,
                                         maxval=rotate_deg))
  phi = jnp.deg2rad(jax.random.uniform(k_shear, minval=-shear_deg,
                                       maxval=shear_deg))
  shift = jax.random.uniform(k_shift, (2,), minval=-translate_frac,
                             maxval=translate_frac) * jnp.array([height, width])
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  # Forward: R(theta) = [[cos, -sin], [sin, cos]], S(phi) = [[1, 0], [tan, 1]]
  # (col += tan(phi) * row). Inverse: S(-phi) R(-theta).
  inverse_rotation = jnp.array([[cos, sin], [-sin, cos]])
  inverse_shear = jnp.array([[1.0, 0.0], [-jnp.tan(phi), 1.0]])
  inverse = inverse_shear @ inverse_rotation
  centre = jnp.array([(height - 1) / 2, (width - 1) / 2])
  # Output pixel o samples the input at inverse @ (o - centre - shift) + centre.
  offset = centre - inverse @ (centre + shift)
  matrix = jnp.eye(4).at[:2, :2].set(inverse).at[:2, 3].set(offset)
  return dm_pix.affine_transform(image, matrix[:3], mode=fill, order=1)
