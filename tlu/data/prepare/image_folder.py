"""A folder of images: `path/<class>/<images>` (one `train` split), `path/<split>/<class>/<images>`
when every top-level folder is `train`, `validation` or `test`, or a folder of images with no
class folders: an unlabelled dataset (torchvision's / Hugging Face's `imagefolder` layout;
lightly's flat folder).

Labels are the class folder names in sorted order (the label feature's names). A class
folder is searched recursively; files are taken in sorted path order. Files whose extension
is not one Pillow reads are skipped and counted; hidden files and folders are ignored.
"""

import collections
import os

import numpy as np
from etils import epath
from PIL import Image

from tlu.data.prepare import FORMATS
from tlu.data.prepare.layout import SPLITS, PrepareError, Source, Split


def image_extensions():
  """Lower-case file extensions Pillow can open ('.jpg', '.png', '.bmp', '.webp', ...)."""
  Image.init()
  return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                   if fmt in Image.OPEN)


_Entry = collections.namedtuple('_Entry', 'rel name is_dir')   # rel: '/'-joined, from the root


def _visible(root, rel=''):
  """The visible entries of folder `root/rel`, sorted by name.

  A local folder is read with os.scandir (its entries' types come with the listing: no stat
  per file, and no path object per file, which 100,000 files would notice); any other
  epath (gs://, ...) through epath.
  """
  folder = f'{root}/{rel}' if rel else root
  prefix = f'{rel}/' if rel else ''
  if '://' not in folder:
    with os.scandir(folder) as listing:
      found = [(e.name, e.is_dir()) for e in listing]
  else:
    found = [(p.name, p.is_dir()) for p in epath.Path(folder).iterdir()]
  return [_Entry(prefix + n, n, d) for n, d in sorted(found) if not n.startswith('.')]


def _suffix(entry):
  return os.path.splitext(entry.name)[1].lower()


def _files(root, rel, extensions, counts):
  """Image files under `root/rel` (recursive), as paths relative to `root`, sorted."""
  found = []
  for entry in _visible(root, rel):
    if entry.is_dir:
      found.extend(_files(root, entry.rel, extensions, counts))
    elif _suffix(entry) in extensions:
      found.append(entry.rel)
    else:
      counts['skipped'] += 1
  return found


def _scan(root, rel, extensions, counts):
  """{class name: [files]} of `root/rel` with class folders, or {None: [files]} when flat."""
  entries = _visible(root, rel)
  dirs = [e for e in entries if e.is_dir]
  loose = [e for e in entries if not e.is_dir and _suffix(e) in extensions]
  where = f'{root}/{rel}' if rel else root
  if dirs and loose:
    raise PrepareError(f'{where}: images ({loose[0].name}, ...) lie beside class folders '
                       f'({dirs[0].name}, ...); put every image in its class folder')
  if not dirs:
    counts['skipped'] += len(entries) - len(loose)
    return {None: [e.rel for e in loose]}
  classes = {}
  for d in dirs:
    classes[d.name] = _files(root, d.rel, extensions, counts)
    if not classes[d.name]:
      raise PrepareError(f'class folder {root}/{d.rel} holds no images')
  return classes


def _split(root, files, labels):
  files = list(files)
  return Split(size=len(files), items=lambda pos: (f'{root}/{files[i]}' for i in pos),
               names=lambda i: files[i], labels=labels)


@FORMATS.register('image_folder')
def read(path):
  """The Source of an image folder (see the module docstring)."""
  if not epath.Path(path).is_dir():
    raise PrepareError(f'{path}: not a folder of images (use configs/prepare.py:arrays or :csv '
                       'for files)')
  root = os.fspath(path).rstrip('/') or '/'
  extensions = image_extensions()
  counts = {'skipped': 0}
  top = [e for e in _visible(root) if e.is_dir]
  split_layout = bool(top) and all(e.name in SPLITS for e in top)
  if split_layout:
    loose = [e for e in _visible(root) if not e.is_dir and _suffix(e) in extensions]
    if loose:
      raise PrepareError(f'{path}: images ({loose[0].name}, ...) lie beside the split folders')
  scanned = ({e.name: _scan(root, e.rel, extensions, counts) for e in top} if split_layout
             else {'train': _scan(root, '', extensions, counts)})
  labelled = {None not in classes for classes in scanned.values()}
  if len(labelled) > 1:
    raise PrepareError(f'{path}: some splits have class folders and others do not')
  if not labelled.pop():
    splits = {name: _split(root, classes[None], None) for name, classes in scanned.items()}
    names = None
  else:
    names = tuple(sorted({c for classes in scanned.values() for c in classes}))
    index = {c: i for i, c in enumerate(names)}
    splits = {}
    for split, classes in scanned.items():
      files = sorted((f, index[c]) for c, fs in classes.items() for f in fs)
      splits[split] = _split(root, [f for f, _ in files],
                             np.asarray([y for _, y in files], np.int64))
  for split, s in splits.items():
    if not s.size:
      raise PrepareError(f'{path}: no images in {split if split_layout else "the folder"} '
                         f'({counts["skipped"]} other files)')
  return Source(splits=splits, label_names=names, file_names=True, skipped=counts['skipped'])
