"""The 'labelled_unlabelled' training stream: B labelled and mu * B unlabelled examples a step.

batch = {'image': (B, H, W, C) uint8, 'label': (B,) int, 'unlabelled_image': (mu B, H, W, C)
uint8, 'unlabelled_index': (mu B,) int32 positions in the unlabelled split}. Two seeded
shuffles, the unlabelled one on its own seed stream, each with a new order every epoch
of its own split; only the unlabelled split's images are read. The house's loader
(tlu.data.loader) takes this layout over once it serves it; the batches are the same.
"""

import numpy as np

from tlu.data import loader


def labelled_unlabelled_iterator(labelled, unlabelled, global_batch, mu, *, seed,
                                 process_index=0, process_count=1):
  """Endless process-local batches of the layout above (grain get_state/set_state).

  global_batch: B, the labelled examples of a global step; mu: int >= 1.
  """
  if global_batch % process_count:
    raise ValueError(f'global batch {global_batch} is not divisible by {process_count} processes')
  lb = loader._Examples(labelled, ('image', 'label'))   # pylint: disable=protected-access
  ulb = loader._Examples(unlabelled, ('image',))   # pylint: disable=protected-access
  lb_order = loader._Order(len(labelled), seed)   # pylint: disable=protected-access
  ulb_order = loader._Order(len(unlabelled), seed, stream=(2,))   # pylint: disable=protected-access
  positions = loader._positions   # pylint: disable=protected-access

  def make_batch(step):
    idx = ulb_order(positions(step, mu * global_batch, process_index, process_count))
    return {**lb.read(lb_order(positions(step, global_batch, process_index, process_count))),
            'unlabelled_image': ulb.read(idx)['image'],
            'unlabelled_index': idx.astype(np.int32)}

  return loader._stream(make_batch, [lb, ulb])   # pylint: disable=protected-access
