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


def _as_array(image):
  """A decoded PIL image -> (H, W, 1 | 3) uint8: palettes, alpha, CMYK, 16-bit made L or RGB."""
  mode = image.mode
  if mode == 'P' and 'transparency' in image.info:
    image = image.convert('RGBA')
    mode = 'RGBA'
  if mode not in ('L', 'RGB'):
    image = image.convert('L' if mode in ('1', 'LA', 'I', 'I;16', 'I;16B', 'I;16L', 'F')
                          else 'RGB')
  array = np.asarray(image, dtype=np.uint8)
  return array[..., None] if array.ndim == 2 else array


def fit(array, image_size, resize, channels):
  """(H, W, C) uint8 -> the stored (H', W', C') uint8.

  image_size > 0 with resize 'crop': the shorter side to image_size (bilinear), then a
  centre crop (`tlu.data.preprocess.fit_image`); 'stretch': both sides to image_size.
  channels 1 | 3 converts (Rec.601 luma, or grey repeated); 0 keeps.
  """
  if array.ndim == 2:
    array = array[..., None]
  if image_size and resize == 'stretch' and array.shape[:2] != (image_size, image_size):
    pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    array = np.asarray(pil.resize((image_size, image_size), Image.BILINEAR))
    array = array[..., None] if array.ndim == 2 else array
    image_size = 0
  return preprocess.fit_image(array, image_size, channels)


def encode(array, encoding):
  """(H, W, C) uint8 -> PNG (lossless) or JPEG (quality 95) bytes."""
  pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
  out = io.BytesIO()
  if encoding == 'png':
    pil.save(out, format='PNG', compress_level=PNG_COMPRESS_LEVEL)
  else:
    pil.save(out, format='JPEG', quality=JPEG_QUALITY)
  return out.getvalue()


def process(item, what, image_size, resize, channels, encoding):
  """One item -> (stored bytes, stored shape, None), or (None, None, error message).

  item: a file path (read and decoded here) or an (H, W[, C]) uint8 array. what: the
  item's name in messages. A file that is already stored as wanted (a PNG or JPEG of
  the stored encoding, L or RGB, of the stored size and channels) is kept byte for byte.
  """
  data = None
  try:
    if isinstance(item, np.ndarray):
      array = item if item.ndim == 3 else item[..., None]
      if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (1, 3):
        return None, None, f'{what}: images must be uint8 (H, W[, 1 | 3]), got {array.dtype} ' \
                           f'{array.shape}'
    else:
      data = epath.Path(item).read_bytes()
      with Image.open(io.BytesIO(data)) as image:
        image.load()
        kept = image.format == ENCODINGS[encoding] and image.mode in ('L', 'RGB')
        array = _as_array(image)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    if data is None and not isinstance(item, np.ndarray):
      raise   # the file could not be read at all (a disk error): not the file's fault
    return None, None, f'{item}: not a readable image ({type(e).__name__}: {e})'
  fitted = fit(array, image_size, resize, channels)
  if data is not None and kept and fitted is array:
    return data, array.shape, None
  return encode(np.ascontiguousarray(fitted), encoding), fitted.shape, None


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
