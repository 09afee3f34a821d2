"""Batch layouts as data: which splits a method's training batches read, and their keys.

A method names its layout in `inputs`; `Method.batches` looks it up here. A new layout
is one entry of `LAYOUTS`, not a branch in the method base. Each batch holds
process-local arrays (B = the global batch over the processes):

  labelled             {'image': (B, H, W, C) uint8, 'label': (B,)} of splits.train
  images               {'image'} of splits.train (labels never read); with the online
                       probe 'label' too (read by the probe only; the same order)
  paired               splits.train's {'image', 'label'} and B images of splits.target
                       as 'target_image' (unsupervised domain adaptation)
  indexed              {'image', 'index': (B,) positions in splits.train} (per-example
                       state: pseudo-labels, feature banks; labels never read)
  labelled_unlabelled  {'image', 'label'} of splits.train and ratio * B images of the
                       unlabelled split (splits.unlabelled, or splits.train when the run
                       has none: USB's unlabelled set holds the labelled images too) as
                       'unlabelled_image', with 'unlabelled_index' (ratio B,) int32 their
                       positions (per-example state); ratio = the method's
                       `unlabelled_ratio` (FixMatch's mu)

Every iterator is grain-style (get_state/set_state), so resume is exact.
"""

import dataclasses
from typing import Callable

from tlu.data import loader


@dataclasses.dataclass(frozen=True)
class Layout:
  """keys: what a batch holds; make(method, splits, **kw) -> the training iterator
  (kw: seed, process_index, process_count)."""
  keys: tuple
  make: Callable


def unlabelled_split(splits):
  """The split of a 'labelled_unlabelled' layout's unlabelled images."""
  unlabelled = getattr(splits, 'unlabelled', None)
  return splits.train if unlabelled is None else unlabelled


LAYOUTS = {
    'labelled': Layout(('image', 'label'), lambda m, s, **kw: loader.train_iterator(
        s.train, m.facts.batch_size, **kw)),
    'images': Layout(('image',), lambda m, s, **kw: loader.train_iterator(
        s.train, m.facts.batch_size, keys=('image',), **kw)),
    'paired': Layout(('image', 'label', 'target_image'), lambda m, s, **kw:
                     loader.paired_iterator(s.train, s.target, m.facts.batch_size, **kw)),
    'indexed': Layout(('image', 'index'), lambda m, s, **kw: loader.train_iterator(
        loader.Indexed(s.train), m.facts.batch_size, keys=('image', 'index'), **kw)),
    'labelled_unlabelled': Layout(
        ('image', 'label', 'unlabelled_image', 'unlabelled_index'),
        lambda m, s, **kw: loader.labelled_unlabelled_iterator(
            s.train, unlabelled_split(s), m.facts.batch_size, m.unlabelled_ratio, **kw)),
}


def layout_name(method):
  """The layout `method` reads: its `inputs`, 'labelled' for 'images' with the online probe."""
  if method.inputs == 'images' and method.facts.online_probe:
    return 'labelled'
  return method.inputs


def iterator(method, splits, **kw):
  """The training iterator of `method`'s layout; ValueError for an unknown layout."""
  name = layout_name(method)
  if name not in LAYOUTS:
    raise ValueError(f'{method.name}: unknown batch layout inputs={name!r}; '
                     f'known: {", ".join(LAYOUTS)}')
  return LAYOUTS[name].make(method, splits, **kw)
