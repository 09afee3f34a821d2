"""grain pipelines over data sources: host-side, numpy, one slice of the global batch per process.

Training batches are shuffled (a new order every epoch), repeated forever and
seeded, so a run is a pure function of its seed; the iterator's state goes into
the checkpoint so a resumed run sees exactly the batches it would have seen.
Evaluation batches cover a split once, in order, padded to a fixed shape with a
`mask` so every example counts exactly once whatever the device count.
"""

import grain
import numpy as np


def _select(example, keys):
  return {k: np.asarray(example[k]) for k in keys}


def train_iterator(source, global_batch, *, seed, process_index=0, process_count=1,
                   keys=('image', 'label')):
  """Endless iterator of process-local batches {key: (global_batch // process_count, ...)}.

  The global order is one seeded shuffle of `source` per epoch; each process takes every `process_count`-th element of it, so the
  processes together see each example once per epoch. Supports get_state/set_state.
  """
  if global_batch % process_count:
    raise ValueError(f'global batch {global_batch} is not divisible by {process_count} processes')
  ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
  ds = ds[process_index::process_count]
  ds = ds.map(lambda ex: _select(ex, keys))
  ds = ds.batch(global_batch // process_count, drop_remainder=True)
  return iter(ds.to_iter_dataset())


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
    examples = [_select(source[int(i)], keys) for i in idx]
    batch = {k: np.stack([ex[k] for ex in examples]) if examples else None for k in keys}
    pad = local - len(idx)
    if pad or not examples:
      template = examples[0] if examples else _select(source[0], keys)
      for k in keys:
        filler = np.zeros((pad,) + template[k].shape, template[k].dtype)
        batch[k] = filler if batch[k] is None else np.concatenate([batch[k], filler])
    batch['mask'] = np.arange(local) < len(idx)
    yield batch
