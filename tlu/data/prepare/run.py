"""One preparation: check the options, read the source with its format, carve the validation
split, write the dataset (`prepare`); every stage then reads it as `dataset.name=<name>`."""

import dataclasses
import os
import re

from etils import epath

from tlu.data.prepare import FORMATS, decode, layout, writer
from tlu.data.prepare.layout import PrepareError

NAME = re.compile(r'[a-z][a-z0-9_]*')


@dataclasses.dataclass(frozen=True)
class Report:
  """What was written: dataset `name` in `data_dir` (its directory `path`), {split: N},
  class names (None: unlabelled), the stored image shape and the files skipped."""
  name: str
  data_dir: str
  path: str
  splits: dict
  label_names: tuple
  image_shape: tuple
  skipped: int

  def line(self):
    splits = ', '.join(f'{k} {v:,}' for k, v in self.splits.items())
    labels = (f'{len(self.label_names)} classes' if self.label_names is not None
              else 'no labels')
    skipped = f'; {self.skipped} files skipped (not images)' if self.skipped else ''
    return (f'prepared {self.name} in {self.path}: {splits}; '
            f'{"x".join(map(str, self.image_shape))} images, {labels}{skipped}')


def check_options(fmt, path, name, image_size, resize, channels, validation, encoding, workers):
  """Every check that needs no file read; PrepareError (one line) naming the key."""
  if fmt not in FORMATS:
    raise PrepareError(f'unknown format {fmt!r}: use configs/prepare.py:<format>, one of '
                       f'{", ".join(FORMATS.names())}')
  if not path:
    raise PrepareError('set --config.path=<the file or folder to prepare>')
  if not epath.Path(path).exists():
    raise PrepareError(f'--config.path={path} does not exist')
  if name and not NAME.fullmatch(name):
    raise PrepareError(f'--config.name={name!r}: a TFDS name is lower case letters, digits and '
                       '_, starting with a letter')
  if image_size < 0 or channels not in (0, 1, 3) or resize not in decode.RESIZE:
    raise PrepareError(f'image_size={image_size} (>= 0), channels={channels} (0, 1 or 3), '
                       f'resize={resize!r} ({" or ".join(decode.RESIZE)}): out of range')
  if encoding not in decode.ENCODINGS:
    raise PrepareError(f'encoding={encoding!r}: one of {", ".join(decode.ENCODINGS)}')
  if validation < 0 or workers < 0:
    raise PrepareError(f'validation={validation}, workers={workers}: must be >= 0')


def prepare(fmt, path, name='', data_dir=None, *, image_size=0, resize='crop', channels=0,
            validation=0, seed=0, encoding='png', overwrite=False, workers=0, progress=None):
  """Writes the files at `path` (format `fmt`) as TFDS dataset `name`; returns a Report.

  name: '' takes the format's catalog name (cifar10, cifar100, mnist, svhn_cropped).
  data_dir: None is TFDS's default (~/tensorflow_datasets or $TFDS_DATA_DIR).
  image_size: 0 keeps the stored size (all images must then agree), else resize
  ('crop': shorter side, centre crop; 'stretch') to image_size x image_size. channels: 0
  keeps, 1 or 3 converts. validation: a count or fraction of train moved to a seeded
  (`seed`), stratified `validation` split. encoding: 'png' (lossless) or 'jpeg' (quality 95).
  workers: decoding processes (0: one per CPU). progress: a tqdm bar or None.
  Raises PrepareError (bad input; nothing written, an existing dataset untouched).
  """
  check_options(fmt, path, name, image_size, resize, channels, validation, encoding, workers)
  source = FORMATS.get(fmt)(path)
  name = name or (source.catalog[0] if source.catalog else '')
  if not name:
    raise PrepareError('set --config.name=<the dataset\'s name>, which stages then read as '
                       '--config.dataset.name')
  source = layout.carve_validation(source, validation, seed)
  if data_dir is None:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    data_dir = tfds.core.constants.DATA_DIR
  options = (image_size, resize, channels, encoding)
  final = writer.write(source, name, data_dir, options, overwrite=overwrite,
                       workers=workers or os.cpu_count() or 1, progress=progress,
                       description=f'Prepared by tlu ({fmt}) from {path}.')
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  info = tfds.builder(name, data_dir=os.fspath(data_dir)).info
  return Report(name=name, data_dir=os.fspath(data_dir), path=os.fspath(final),
                splits={k: v.num_examples for k, v in info.splits.items()},
                label_names=source.label_names, image_shape=tuple(info.features['image'].shape),
                skipped=source.skipped)
