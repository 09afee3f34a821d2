"""Images/s that tlu's training loader delivers from a CIFAR-10-sized source, loader alone.

  python -m benchmarks.loader [--source mock|memory] [--batch 256] [--windows 3]
      [--batches 195] [--cache_bytes N]

`tlu.data.loader.train_iterator` (shuffled, seeded, endless: what every run trains on)
over 50,000 x 32x32x3 uint8 images with labels, batch 256, nothing downstream (no device
transfer, no step). Sources:
  mock    `cifar10` train through the house path (`tlu.data.subsets.task_source`) under
          `tfds.testing.mock_data(num_examples=50000, policy=USE_CODE)`: an array_record
          data source whose examples are generated, read one example at a time;
  memory  a random-access source over numpy arrays (the same 50,000 examples' shape).
Setup (building the iterator: a source that fits `loader.CACHE_BYTES` is read into host
memory once) is reported apart; then `--windows` windows of `--batches` batches (195: one
epoch) are timed, images/s = median over windows. `--cache_bytes 0` makes every batch a
read from the source (the path of a dataset too big for memory). One line; target
(issue "Speed"): >= 20,000 images/s on a 2-core CPU.
"""

import argparse
import contextlib
import os
import statistics
import time

import numpy as np

from tlu.data import loader

SHAPE, NUM_EXAMPLES, TARGET = (32, 32, 3), 50_000, 20_000


class Arrays:
  """Random-access {'image', 'label'} examples over numpy arrays."""

  def __init__(self, n, seed=0):
    rng = np.random.default_rng(seed)
    self.images = rng.integers(0, 256, (n,) + SHAPE, dtype=np.uint8)
    self.labels = rng.integers(0, 10, n)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {'image': self.images[i], 'label': self.labels[i]}


@contextlib.contextmanager
def open_source(kind):
  """Yields (source, description) of `kind`; the mock lives only inside the context."""
  if kind == 'memory':
    yield Arrays(NUM_EXAMPLES), 'in-memory arrays'
    return
  import ml_collections  # pylint: disable=import-outside-toplevel
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from absl import logging  # pylint: disable=import-outside-toplevel
  from tlu.data import subsets  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.ERROR)   # the mock's "no dataset_info.json" warnings
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE):
    yield (subsets.task_source(ml_collections.ConfigDict({'name': 'cifar10'}), 'train'),
           'cifar10 (tfds mock)')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--source', default='mock', choices=('mock', 'memory'))
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--windows', type=int, default=3)
  parser.add_argument('--batches', type=int, default=NUM_EXAMPLES // 256,
                      help='batches per timed window (default: one epoch)')
  parser.add_argument('--cache_bytes', type=int, default=None,
                      help=f'override loader.CACHE_BYTES ({loader.CACHE_BYTES})')
  args = parser.parse_args()
  if args.cache_bytes is not None:
    loader.CACHE_BYTES = args.cache_bytes
  with open_source(args.source) as (source, name):
    t = time.perf_counter()
    it = loader.train_iterator(source, args.batch, seed=0)
    first = next(it)
    setup_s = time.perf_counter() - t
    assert first['image'].shape == (args.batch,) + SHAPE and first['image'].dtype == np.uint8
    rates = []
    for _ in range(args.windows):
      t = time.perf_counter()
      for _ in range(args.batches):
        batch = next(it)
      rates.append(args.batch * args.batches / (time.perf_counter() - t))
    assert batch['label'].shape == (args.batch,)
  rate = statistics.median(rates)
  epoch = NUM_EXAMPLES / args.batch
  first_epoch = NUM_EXAMPLES / (setup_s + epoch * args.batch / rate)
  cached = 'read into memory once' if loader.CACHE_BYTES >= len(source) * (np.prod(SHAPE) + 8) \
      else 'no cache: every batch read from the source'
  print(f'loader {name} {len(source)}x{"x".join(map(str, SHAPE))} uint8 b={args.batch}: '
        f'{rate:,.0f} img/s (median of {args.windows} windows of {args.batches} batches: '
        f'{", ".join(f"{r:,.0f}" for r in rates)}), setup {setup_s:.2f} s ({cached}), '
        f'first epoch incl. setup {first_epoch:,.0f} img/s | target >= {TARGET:,} img/s: '
        f'{"met" if rate >= TARGET else "NOT met"} | {len(os.sched_getaffinity(0))} cores, '
        f'load {os.getloadavg()[0]:.1f}', flush=True)


if __name__ == '__main__':
  main()
