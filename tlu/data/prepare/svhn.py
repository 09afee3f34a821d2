"""SVHN, format 2 (cropped 32x32 digits): `train_32x32.mat`, `test_32x32.mat` and optionally
`extra_32x32.mat` from http://ufldl.stanford.edu/housenumbers/, in one folder.

Layout (the SVHN page): a MATLAB file with `X` (32, 32, 3, N) uint8 and `y` (N, 1) labels
1..10, where 10 means the digit 0. Written as the TFDS catalog's `svhn_cropped` (its name,
version and features: id, image, label = y mod 10). One .mat file is in memory at a time.
"""

import numpy as np
from etils import epath

from tlu.data.prepare import FORMATS
from tlu.data.prepare.layout import PrepareError, Source, Split

FILES = {'train': 'train_32x32.mat', 'test': 'test_32x32.mat', 'extra': 'extra_32x32.mat'}


def _load(path):
  import scipy.io  # pylint: disable=import-outside-toplevel
  try:
    with path.open('rb') as f:
      data = scipy.io.loadmat(f)
  except (OSError, ValueError, TypeError, NotImplementedError) as e:
    raise PrepareError(f'{path}: not a MATLAB file of SVHN format 2 ({e})') from None
  x, y = data.get('X'), data.get('y')
  if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (
      32, 32, 3):
    raise PrepareError(f'{path}: X must be (32, 32, 3, N) uint8, got '
                       f'{getattr(x, "dtype", None)} {getattr(x, "shape", None)}')
  if not isinstance(y, np.ndarray) or y.size != x.shape[-1] or y.min() < 1 or y.max() > 10:
    raise PrepareError(f'{path}: y must be {x.shape[-1]} labels in 1..10')
  return x, y.reshape(-1).astype(np.int64) % 10


def _split(path, name):
  _, labels = _load(path)   # labels up front; the images when the split is written

  def items(pos):
    x, _ = _load(path)
    yield from (np.ascontiguousarray(x[..., i]) for i in pos)

  return Split(size=len(labels), items=items, names=lambda i: f'{path}[{i}]', labels=labels,
               extras={'id': np.asarray([f'{name}_{i:06d}' for i in range(len(labels))])})


@FORMATS.register('svhn')
def read(path):
  """The Source of SVHN's format-2 .mat files (see the module docstring)."""
  folder = epath.Path(path)
  if not folder.is_dir():
    raise PrepareError(f'{path}: not a folder (give the folder that holds train_32x32.mat and '
                       'test_32x32.mat)')
  missing = [f for s, f in FILES.items() if s != 'extra' and not (folder / f).is_file()]
  if missing:
    raise PrepareError(f'{folder}: no {missing[0]} (SVHN format 2)')
  splits = {s: _split(folder / f, s) for s, f in FILES.items() if (folder / f).is_file()}
  return Source(splits=splits, label_names=tuple(str(i) for i in range(10)),
                catalog=('svhn_cropped',))
