"""A CSV list: a header with a `path` column (image files, relative to the CSV's folder or
absolute) and optional `label` and `split` (train | validation | test) columns, the common
form of medical and remote-sensing datasets. Without `split` every row is `train`; without
`label` the dataset is unlabelled. Rows keep the CSV's order within each split."""

import csv
import io
import os

import numpy as np
from etils import epath

from tlu.data.prepare import FORMATS
from tlu.data.prepare.layout import SPLITS, PrepareError, Source, Split, label_names_of


def _rows(file):
  try:
    text = file.read_text(encoding='utf-8-sig')
  except (OSError, UnicodeDecodeError) as e:
    raise PrepareError(f'{file}: not a readable CSV file ({e})') from None
  reader = csv.DictReader(io.StringIO(text))
  columns = [c.strip() for c in reader.fieldnames or ()]
  if 'path' not in columns:
    raise PrepareError(f'{file}: needs a header with a path column (and optional label, '
                       f'split); it has {columns}')
  rows = [{k.strip(): (v or '').strip() for k, v in row.items() if k} for row in reader]
  if not rows:
    raise PrepareError(f'{file}: lists no images')
  return rows, columns


@FORMATS.register('csv')
def read(path):
  """The Source of a CSV list (see the module docstring)."""
  file = epath.Path(path)
  if not file.is_file():
    raise PrepareError(f'{path}: no such CSV file')
  rows, columns = _rows(file)
  folder = os.fspath(file.parent)
  local = '://' not in folder   # os.path: no path object per row (100,000 rows would notice)
  for line, row in enumerate(rows, start=2):
    for column in ('path',) + tuple(c for c in ('label', 'split') if c in columns):
      if not row.get(column):
        raise PrepareError(f'{file} line {line}: empty {column}')
    if row.get('split', 'train') not in SPLITS:
      raise PrepareError(f'{file} line {line}: split {row["split"]!r} is not one of {SPLITS}')
    image = os.path.join(folder, row['path'])
    if not (os.path.isfile(image) if local else epath.Path(image).is_file()):
      raise PrepareError(f'{file} line {line}: {image} does not exist')
  names, labels = (label_names_of([r['label'] for r in rows]) if 'label' in columns
                   else (None, None))
  splits = {}
  for split in SPLITS:
    idx = [i for i, r in enumerate(rows) if r.get('split', 'train') == split]
    if not idx:
      continue
    files = [rows[i]['path'] for i in idx]
    splits[split] = Split(
        size=len(idx), items=lambda pos, files=files: (os.path.join(folder, files[i]) for i in pos),
        names=lambda i, files=files: files[i],
        labels=None if labels is None else labels[np.asarray(idx)])
  return Source(splits=splits, label_names=names, file_names=True)
