"""Host-side fitting of images to one model input shape (size and channels).

Catalog datasets come in many sizes (MNIST 28x28x1, SVHN 32x32x3, ImageNet of
any size); a model takes one shape. This is deterministic resizing, done once
per example on the host with Pillow; random augmentation happens later, on device.
"""

import numpy as np
from PIL import Image


def fit_image(image, size=0, channels=0):
  """(H, W, C) uint8 -> (size, size, channels) uint8.

  size > 0: resize the shorter side to `size` (bilinear), then centre-crop to a
  square. channels: 1 -> 3 repeats grey, 3 -> 1 takes Rec.601 luma. 0 keeps as is.
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if size and image.shape[:2] != (size, size):
    h, w = image.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    mode = 'L' if image.shape[-1] == 1 else 'RGB'
    pil = Image.fromarray(image[..., 0] if mode == 'L' else image, mode)
    resized = np.asarray(pil.resize((nw, nh), Image.BILINEAR))
    top, left = (nh - size) // 2, (nw - size) // 2
    image = resized[top:top + size, left:left + size].reshape(size, size, -1)
  if channels and image.shape[-1] != channels:
    if image.shape[-1] == 1 and channels == 3:
      image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 3 and channels == 1:
      luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
      image = np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
    else:
      raise ValueError(f'cannot convert {image.shape[-1]} channels to {channels}')
  return image


def fitted_shape(shape, size=0, channels=0):
  """The model input shape of images stored with `shape` (None for unknown sizes)."""
  h, w, c = shape
  return (size or h, size or w, channels or c)
