"""Arrays: an `.npz` with `image` (or `images`) (N, H, W[, C]) uint8 and optional `label` (or
`labels`) (N,) integers, or an `.npy` of images (unlabelled). One `train` split; the file is
the one source file in memory (an `.npy` is memory-mapped)."""

import numpy as np
from etils import epath

from tlu.data.prepare import FORMATS
from tlu.data.prepare.layout import PrepareError, Source, Split, label_names_of


def _key(arrays, names, path, required):
  found = [k for k in names if k in arrays]
  if not found and required:
    raise PrepareError(f'{path}: holds {sorted(arrays)}, no {" or ".join(names)} array')
  return found[0] if found else None


def _images(images, path):
  if images.dtype != np.uint8 or images.ndim not in (3, 4) or (
      images.ndim == 4 and images.shape[-1] not in (1, 3)):
    raise PrepareError(f'{path}: images must be uint8 (N, H, W[, 1 | 3]), got '
                       f'{images.dtype} {images.shape}')
  return images


@FORMATS.register('arrays')
def read(path):
  """The Source of an .npz or .npy file (see the module docstring)."""
  file = epath.Path(path)
  if not file.is_file() or file.suffix not in ('.npz', '.npy'):
    raise PrepareError(f'{path}: not an .npz or .npy file')
  try:
    if file.suffix == '.npy':
      images, labels = np.load(file, mmap_mode='r', allow_pickle=False), None
    else:
      with file.open('rb') as f, np.load(f, allow_pickle=False) as arrays:
        images = arrays[_key(arrays, ('image', 'images'), path, True)]
        label_key = _key(arrays, ('label', 'labels'), path, False)
        labels = arrays[label_key] if label_key else None
  except (OSError, ValueError) as e:
    raise PrepareError(f'{path}: not a readable numpy file ({e})') from None
  images = _images(images, path)
  names = None
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or labels.dtype.kind not in 'iu':
      raise PrepareError(f'{path}: labels must be ({len(images)},) integers, got '
                         f'{labels.dtype} {labels.shape}')
    names, labels = label_names_of(labels)
  if not len(images):
    raise PrepareError(f'{path}: holds no images')
  split = Split(size=len(images), items=lambda pos: (np.asarray(images[i]) for i in pos),
                names=lambda i: f'{path}[{i}]', labels=labels)
  return Source(splits={'train': split}, label_names=names)
