"""MNIST's four idx files (http://yann.lecun.com/exdb/mnist/, gzipped or not) in one folder:
`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte` (also with `.gz`, or `.idx3-ubyte` spelt with a dot). The same files
of Fashion-MNIST and KMNIST work alike.

idx layout (the MNIST page): a big-endian int32 magic number, 2051 (0x00000803: unsigned
bytes, 3 dimensions) for images and 2049 (0x00000801, 1 dimension) for labels, then the
dimensions as big-endian int32 (N, 28, 28 / N), then the values row-major. Written as the
TFDS catalog's `mnist` (or `fashion_mnist`, `kmnist` when so named): train and test splits.
Labels are read up front; images stream from the file, one at a time.
"""

import gzip

import numpy as np
from etils import epath

from tlu.data.prepare import FORMATS
from tlu.data.prepare.layout import PrepareError, Source, Split

FILES = {'train': ('train-images', 'train-labels'), 'test': ('t10k-images', 't10k-labels')}
MAGIC = {3: 2051, 1: 2049}


def _find(folder, stem, ndim):
  for sep in ('-', '.'):
    for ext in ('', '.gz'):
      path = folder / f'{stem}{sep}idx{ndim}-ubyte{ext}'
      if path.is_file():
        return path
  raise PrepareError(f'{folder}: no {stem}-idx{ndim}-ubyte[.gz] (MNIST\'s four idx files)')


def _open(path):
  raw = path.open('rb')
  head = raw.read(2)
  raw.seek(0)
  return gzip.GzipFile(fileobj=raw) if head == b'\x1f\x8b' else raw


def _header(f, path, ndim):
  try:
    head = f.read(4 + 4 * ndim)
  except (OSError, EOFError) as e:
    raise PrepareError(f'{path}: not an idx file ({e})') from None
  if len(head) < 4 + 4 * ndim:
    raise PrepareError(f'{path}: too short for an idx header')
  magic, *dims = np.frombuffer(head, '>i4')
  if magic != MAGIC[ndim]:
    raise PrepareError(f'{path}: magic number {magic}, expected {MAGIC[ndim]} (an idx{ndim} '
                       'file of unsigned bytes)')
  return [int(d) for d in dims]


def _labels(path):
  with _open(path) as f:
    (n,) = _header(f, path, 1)
    labels = np.frombuffer(f.read(), np.uint8).astype(np.int64)
  if len(labels) != n:
    raise PrepareError(f'{path}: header says {n} labels, the file holds {len(labels)}')
  return labels


def _split(images_path, labels):
  with _open(images_path) as f:
    n, h, w = _header(f, images_path, 3)
  if n != len(labels):
    raise PrepareError(f'{images_path}: {n} images but {len(labels)} labels')

  def items(pos):
    with _open(images_path) as f:
      _header(f, images_path, 3)
      at = 0
      for i in pos:
        if i > at:
          f.read((i - at) * h * w)
        row = f.read(h * w)
        if len(row) != h * w:
          raise PrepareError(f'{images_path}: truncated at image {i}')
        at = i + 1
        yield np.frombuffer(row, np.uint8).reshape(h, w, 1)

  return Split(size=n, items=items, names=lambda i: f'{images_path}[{i}]', labels=labels)


@FORMATS.register('mnist')
def read(path):
  """The Source of MNIST's idx files (see the module docstring)."""
  folder = epath.Path(path)
  if not folder.is_dir():
    raise PrepareError(f'{path}: not a folder (give the folder that holds the four idx files)')
  splits = {}
  for split, (images, labels) in FILES.items():
    label_values = _labels(_find(folder, labels, 1))
    if label_values.max(initial=0) > 9:
      raise PrepareError(f'{folder}: {labels} holds label {label_values.max()}, not a digit')
    splits[split] = _split(_find(folder, images, 3), label_values)
  return Source(splits=splits, label_names=tuple(str(i) for i in range(10)),
                catalog=('mnist', 'fashion_mnist', 'kmnist'))
