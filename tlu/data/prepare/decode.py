"""One image in, its stored bytes out: decode, convert, resize, encode (runs in worker processes).

This module imports only numpy, Pillow and etils, so a worker process starts cheaply.
A worker never raises: a file that does not decode comes back as an error message naming
it, and the parent process stops the whole preparation with that one line.
"""

import collections
import io
import multiprocessing
import signal

import numpy as np
from etils import epath
from PIL import Image

from tlu.data import preprocess

ENCODINGS = {'png': 'PNG', 'jpeg': 'JPEG'}
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1   # lossless at any level; 1 is the fastest of zlib's levels
RESIZE = ('crop', 'stretch')


def _as_pil(image):
  """A decoded PIL image made L or RGB: palettes, alpha, CMYK, 16-bit converted."""
  mode = image.mode
  if mode == 'P' and 'transparency' in image.info:
    image = image.convert('RGBA')
    mode = 'RGBA'
  if mode not in ('L', 'RGB'):
    image = image.convert('L' if mode in ('1', 'LA', 'I', 'I;16', 'I;16B', 'I;16L', 'F')
                          else 'RGB')
  return image


def fit(image, image_size, resize, channels):
  """A PIL image (L | RGB) -> the stored PIL image (L | RGB); `image` itself if unchanged.

  image_size > 0 with resize 'crop': the shorter side to image_size (bilinear), then a
  centre crop, the arithmetic of `tlu.data.preprocess.fit_image` done on the PIL image (no
  array round trip: a fifth of the time per image); 'stretch': both sides to image_size.
  channels 1 | 3 converts as `fit_image` does (Rec.601 luma, or grey repeated); 0 keeps.
  """
  w, h = image.size
  if image_size and (w, h) != (image_size, image_size):
    if resize == 'stretch':
      image = image.resize((image_size, image_size), Image.BILINEAR)
    else:
      scale = image_size / min(h, w)
      nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
      top, left = (nh - image_size) // 2, (nw - image_size) // 2
      image = image.resize((nw, nh), Image.BILINEAR).crop(
          (left, top, left + image_size, top + image_size))
  if channels and channels != (1 if image.mode == 'L' else 3):
    array = preprocess.fit_image(np.asarray(image), 0, channels)
    image = Image.fromarray(array[..., 0] if channels == 1 else array)
  return image


def encode(image, encoding):
  """A PIL image -> PNG (lossless) or JPEG (quality 95) bytes."""
  out = io.BytesIO()
  if encoding == 'png':
    image.save(out, format='PNG', compress_level=PNG_COMPRESS_LEVEL)
  else:
    image.save(out, format='JPEG', quality=JPEG_QUALITY)
  return out.getvalue()


def process(item, what, image_size, resize, channels, encoding):
  """One item -> (stored bytes, stored (H, W, C), None), or (None, None, error message).

  item: a file path (read and decoded here) or an (H, W[, C]) uint8 array. what: the
  item's name in messages. A file that is already stored as wanted (a PNG or JPEG of
  the stored encoding, L or RGB, of the stored size and channels) is kept byte for byte.
  """
  data, kept = None, False
  try:
    if isinstance(item, np.ndarray):
      array = item if item.ndim == 3 else item[..., None]
      if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (1, 3):
        return None, None, f'{what}: images must be uint8 (H, W[, 1 | 3]), got {array.dtype} ' \
                           f'{array.shape}'
      image = Image.fromarray(np.ascontiguousarray(array[..., 0] if array.shape[-1] == 1
                                                   else array))
    else:
      data = epath.Path(item).read_bytes()
      decoded = Image.open(io.BytesIO(data))
      decoded.load()
      kept = decoded.format == ENCODINGS[encoding] and decoded.mode in ('L', 'RGB')
      image = _as_pil(decoded)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    if data is None and not isinstance(item, np.ndarray):
      raise   # the file could not be read at all (a disk error): not the file's fault
    return None, None, f'{item}: not a readable image ({type(e).__name__}: {e})'
  fitted = fit(image, image_size, resize, channels)
  shape = (fitted.size[1], fitted.size[0], 1 if fitted.mode == 'L' else 3)
  if kept and fitted is image:
    return data, shape, None
  return encode(fitted, encoding), shape, None


def process_chunk(chunk, options):
  """[(item, what), ...] -> [process(...) for each]: one round trip to a worker."""
  return [process(item, what, *options) for item, what in chunk]


def _worker_signals():
  """A worker dies on SIGTERM (Pool.terminate), whatever handler the parent installed, and
  leaves Ctrl-C to the parent."""
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_workers(workers):
  """A process pool of `workers` (None for 0 or 1: everything runs in this process).

  Started with fork where the platform has it (nothing is imported again), else spawn.
  """
  if workers <= 1:
    return None
  methods = multiprocessing.get_all_start_methods()
  context = multiprocessing.get_context('fork' if 'fork' in methods else 'spawn')
  return context.Pool(workers, initializer=_worker_signals)


def ordered_map(pool, chunks, options, window):
  """process_chunk over `chunks` in order, at most `window` chunks in flight (bounded memory)."""
  if pool is None:
    for chunk in chunks:
      yield process_chunk(chunk, options)
    return
  pending = collections.deque()
  for chunk in chunks:
    pending.append(pool.apply_async(process_chunk, (chunk, options)))
    if len(pending) >= window:
      yield pending.popleft().get()
  while pending:
    yield pending.popleft().get()
