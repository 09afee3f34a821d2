"""Anchor + mined-neighbour training batches for SCAN's clustering step.

SCAN's `NeighborsDataset` returns, for each anchor, the image of one neighbour drawn
uniformly from its mined set (the anchor itself included). Here: the 'indexed' batches
of the train split ({'image', 'index'}, `tlu.data.loader.train_iterator`'s seeded order),
plus 'neighbour_image' and 'neighbour_index', the neighbour column drawn with numpy from
(seed, process, batch number). The neighbour table (N, K + 1) is set by the method's
host hook after it mines the neighbours, and travels in this iterator's checkpointed
state (get_state / set_state, as grain's handler saves any such iterator), so a resumed
run draws the same neighbours.
"""

import base64
import json

import numpy as np

from tlu.data import loader


class NeighbourBatches:
  """Endless process-local {'image', 'index', 'neighbour_image', 'neighbour_index'} batches."""

  def __init__(self, source, global_batch, *, seed, process_index=0, process_count=1):
    self.anchors = loader.train_iterator(loader.Indexed(source), global_batch, seed=seed,
                                         process_index=process_index,
                                         process_count=process_count, keys=('image', 'index'))
    self.examples = loader._Examples(source, ('image',))   # pylint: disable=protected-access
    self.seed, self.process_index = seed, process_index
    self.step, self.table = 0, None

  def set_table(self, table):
    """table: (N, K + 1) int neighbour indices of every training example (self included)."""
    self.table = np.asarray(table, np.int32)

  def __iter__(self):
    return self

  def __next__(self):
    if self.table is None:
      raise RuntimeError('SCAN: neighbours are not mined yet (the host hook sets them)')
    batch = dict(next(self.anchors))
    rng = np.random.default_rng((self.seed, 7, self.process_index, self.step))
    index = np.asarray(batch['index'], np.int64)
    columns = rng.integers(0, self.table.shape[1], index.shape[0])
    chosen = self.table[index, columns]
    batch['neighbour_image'] = self.examples.read(chosen)['image']
    batch['neighbour_index'] = chosen.astype(np.int32)
    self.step += 1
    return batch

  def get_state(self):
    table = None if self.table is None else {
        'shape': list(self.table.shape),
        'data': base64.b64encode(self.table.tobytes()).decode('ascii')}
    return json.dumps({'anchors': self.anchors.get_state(), 'step': self.step,
                       'table': table}).encode()

  def set_state(self, state):
    state = json.loads(state.decode() if isinstance(state, bytes) else state)
    self.anchors.set_state(state['anchors'])
    self.step = state['step']
    table = state['table']
    self.table = None if table is None else np.frombuffer(
        base64.b64decode(table['data']), np.int32).reshape(table['shape']).copy()

  def start_prefetch(self):
    """grain's checkpoint handler calls this after a restore; nothing to prefetch."""
