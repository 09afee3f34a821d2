"""Cutout (DeVries & Taylor 2017) as USB's RandAugment ends with it, on one image.

USB (`semilearn/datasets/augmentation/randaugment.py`, `Cutout` / `CutoutAbs`): a side
v = U(0, max_frac) * W pixels (max_frac = 0.5 there), a centre (cx, cy) uniform over the
image, x0 = int(max(0, cx - v / 2)), y0 = int(max(0, cy - v / 2)), x1 = min(W, x0 + v),
y1 = min(H, y0 + v), and `ImageDraw.rectangle((x0, y0, x1, y1), (125, 123, 114))`, which
fills columns x0..int(x1) and rows y0..int(y1), both ends included, clipped to the image.
USB draws the centre with `np.random.uniform(w)` (that is U(1, w)); here it is U(0, w).
A 1-channel image is filled with that colour's Pillow 'L' value, 123.
"""

import jax
import jax.numpy as jnp

FILL_RGB = (125.0, 123.0, 114.0)
FILL_GREY = 123.0   # (19595 * 125 + 38470 * 123 + 7471 * 114 + 2^15) >> 16


def cutout_box(key, height, width, max_frac=0.5):
  """(x0, y0, x1, y1) of USB's cutout, as floats; x0, y0 whole, x1, y1 not (see module)."""
  k_size, k_x, k_y = jax.random.split(key, 3)
  side = jax.random.uniform(k_size) * max_frac * width
  cx = jax.random.uniform(k_x) * width
  cy = jax.random.uniform(k_y) * height
  x0 = jnp.floor(jnp.maximum(0.0, cx - side / 2))
  y0 = jnp.floor(jnp.maximum(0.0, cy - side / 2))
  return x0, y0, jnp.minimum(width, x0 + side), jnp.minimum(height, y0 + side)


def fill_box(image, box, fill):
  """Pixels of (H, W, C) in columns x0..int(x1), rows y0..int(y1) set to `fill` (C,);
  nothing when the side is 0 (USB returns the image unchanged for v <= 0)."""
  x0, y0, x1, y1 = box
  height, width = image.shape[0], image.shape[1]
  rows = jnp.arange(height, dtype=jnp.float32)[:, None]
  cols = jnp.arange(width, dtype=jnp.float32)[None, :]
  inside = ((cols >= x0) & (cols <= jnp.floor(x1)) & (rows >= y0) & (rows <= jnp.floor(y1))
            & (x1 > x0))
  return jnp.where(inside[..., None], jnp.asarray(fill, image.dtype), image)


def cutout(key, image, max_frac=0.5, scale=1.0 / 255.0):
  """USB's Cutout on one (H, W, C) image; `scale` maps the 0..255 fill colour to the
  image's range (1/255 for tlu's [0, 1] floats, 1 for levels). Returns (H, W, C)."""
  height, width, channels = image.shape
  fill = FILL_RGB if channels == 3 else (FILL_GREY,) * channels
  box = cutout_box(key, height, width, max_frac)
  return fill_box(image, box, jnp.asarray(fill, jnp.float32) * scale)
