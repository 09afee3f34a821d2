"""grain pipelines over data sources: host-side, numpy, one slice of the global batch per process.

Training batches are shuffled (a new order every epoch), repeated forever and
seeded, so a run is a pure function of its seed; the iterator's state goes into
the checkpoint so a resumed run sees exactly the batches it would have seen.
The order is drawn with numpy per epoch and a whole batch is read at once:
grain's per-element shuffle and batching cost ~1 ms per example here, more than
a small model's training step.
Evaluation batches cover a split once, in order, padded to a fixed shape with a
`mask` so every example counts exactly once whatever the device count.
"""

import functools

import grain
import numpy as np

CACHE_BYTES = 256 << 20   # sources up to this size are read once into host memory
_ENDLESS = 2 ** 62        # batches in a training stream: no run gets near


def _select(example, keys):
  return {k: np.asarray(example[k]) for k in keys}


def _read(source, idx, keys):
  """Examples `idx` of `source` stacked as {key: (len(idx), ...)}; one batched read where supported."""
  getitems = getattr(source, '__getitems__', None)
  examples = getitems([int(i) for i in idx]) if getitems else [source[int(i)] for i in idx]
  examples = [_select(ex, keys) for ex in examples]
  return {k: np.stack([ex[k] for ex in examples]) for k in keys}


class _Examples:
  """Reads examples by index as stacked arrays; a small source is read once and kept in memory.

  Digits, CIFAR-10 and few-label views fit, and then a batch is a fancy index
  (microseconds) instead of one read and one small copy per example.
  """

  def __init__(self, source, keys):
    self.source, self.keys = source, tuple(keys)
    first = _select(source[0], self.keys)
    fits = sum(v.nbytes for v in first.values()) * len(source) <= CACHE_BYTES
    self.arrays = None
    if fits:
      self.arrays = self.read(np.arange(len(source)))

  def read(self, idx):
    if self.arrays is not None:
      return {k: v[idx] for k, v in self.arrays.items()}
    return _read(self.source, idx, self.keys)


class _Order:
  """Global stream position -> source index: a fresh seeded permutation every epoch."""

  def __init__(self, n, seed, stream=()):
    """stream: extra seed words, so two orders of one seed are independent (DANN's domains)."""
    self.n, self.seed, self.stream = n, seed, tuple(stream)
    self.permutation = functools.lru_cache(maxsize=64)(self._permutation)

  def _permutation(self, epoch):
    return np.random.default_rng((self.seed, *self.stream, epoch)).permutation(self.n)

  def __call__(self, positions):
    epochs, offsets = np.divmod(positions, self.n)
    out = np.empty_like(positions)
    for e in np.unique(epochs):
      here = epochs == e
      out[here] = self.permutation(int(e))[offsets[here]]
    return out


def _stream(make_batch, examples):
  """A grain iterator over local batch numbers 0, 1, ...; its state is the next batch number."""
  in_memory = all(e.arrays is not None for e in examples)
  options = (grain.ReadOptions(num_threads=0, prefetch_buffer_size=0) if in_memory
             else grain.ReadOptions())   # threads read ahead where reading costs something
  ds = grain.MapDataset.range(_ENDLESS).map(make_batch)
  return iter(ds.to_iter_dataset(options))


def _positions(step, global_batch, process_index, process_count):
  """Stream positions of this process's part of global batch `step`: every P-th from its offset."""
  local = global_batch // process_count
  return step * global_batch + process_index + process_count * np.arange(local)


def _check(global_batch, process_count):
  if global_batch % process_count:
    raise ValueError(f'global batch {global_batch} is not divisible by {process_count} processes')


def train_iterator(source, global_batch, *, seed, process_index=0, process_count=1,
                   keys=('image', 'label')):
  """Endless iterator of process-local batches {key: (global_batch // process_count, ...)}.

  The global order is one seeded shuffle of `source` per epoch; each process takes every `process_count`-th element of it, so the
  processes together see each example once per epoch. Supports get_state/set_state.
  """
  _check(global_batch, process_count)
  examples = _Examples(source, keys)
  order = _Order(len(source), seed)

  def make_batch(step):
    return examples.read(order(_positions(step, global_batch, process_index, process_count)))

  return _stream(make_batch, [examples])


def paired_iterator(source, target, global_batch, *, seed, process_index=0, process_count=1):
  """Endless {'image', 'label', 'target_image'} batches, `global_batch` from each domain.

  Two independent seeded shuffles (the target's has its own seed stream, so it is
  not the source order of another seed), each with a new order every epoch of its
  own domain. Only the target's images are read, never its labels.
  """
  _check(global_batch, process_count)
  src, tgt = _Examples(source, ('image', 'label')), _Examples(target, ('image',))
  src_order, tgt_order = _Order(len(source), seed), _Order(len(target), seed, stream=(1,))

  def make_batch(step):
    pos = _positions(step, global_batch, process_index, process_count)
    return {**src.read(src_order(pos)), 'target_image': tgt.read(tgt_order(pos))['image']}

  return _stream(make_batch, [src, tgt])


def labelled_unlabelled_iterator(labelled, unlabelled, global_batch, ratio, *, seed,
                                 process_index=0, process_count=1):
  """Endless semi-supervised batches: B = `global_batch` labelled and ratio * B unlabelled.

  {'image': (B, H, W, C), 'label': (B,), 'unlabelled_image': (ratio B, H, W, C),
  'unlabelled_index': (ratio B,) int32 positions in `unlabelled` (for per-example
  state)}, process-local. Two seeded shuffles, the unlabelled one on its own seed
  stream, each with a new order every epoch of its own split; only the unlabelled
  split's images are read.
  """
  _check(global_batch, process_count)
  lb, ulb = _Examples(labelled, ('image', 'label')), _Examples(unlabelled, ('image',))
  lb_order, ulb_order = _Order(len(labelled), seed), _Order(len(unlabelled), seed, stream=(2,))

  def make_batch(step):
    idx = ulb_order(_positions(step, ratio * global_batch, process_index, process_count))
    return {**lb.read(lb_order(_positions(step, global_batch, process_index, process_count))),
            'unlabelled_image': ulb.read(idx)['image'],
            'unlabelled_index': idx.astype(np.int32)}

  return _stream(make_batch, [lb, ulb])


def eval_batches(source, global_batch, *, process_index=0, process_count=1,
                 keys=('image', 'label')):
  """One ordered pass: process-local batches padded to a fixed size, with a bool `mask`."""
  local = global_batch // process_count
  n = len(source)
  per_process = -(-n // process_count)
  steps = -(-per_process // local)
  mine = np.arange(process_index, n, process_count)
  for s in range(steps):
    idx = mine[s * local:(s + 1) * local]
    batch = _read(source, idx if len(idx) else [0], keys)   # an empty slice: shapes from example 0
    real = batch if len(idx) else {k: v[:0] for k, v in batch.items()}
    pad = local - len(idx)
    batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)]) if pad else v
             for k, v in real.items()}
    batch['mask'] = np.arange(local) < len(idx)
    yield batch


class Indexed:
  """Random-access {'image', 'index'} view of a source: its labels are never read.

  For methods that keep per-example state (SHOT's pseudo-labels, indexed by 'index').
  """

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    return {'image': self.source[int(i)]['image'], 'index': np.int64(i)}
