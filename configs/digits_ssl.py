"""Self-supervised pretraining of the small CNN on the embedded 8x8 digits, without labels.

`python -m experiments.pretrain --config=configs/digits_ssl.py:<method>` with <method>
one of the variants below (default simclr). Every method shares the data, backbone,
optimizer, augmentations, step budget and evaluators (kNN, linear probe on all labels
and on 10 labels per class, k-means; BatchNorm in inference mode); only the method
block differs. Measured: docs/results.md.
"""

import ml_collections

from configs import digits_simclr

METHODS = {
    'simclr': dict(name='simclr', temperature=0.5, projector=(128,)),
    'mocov3': dict(name='mocov3', temperature=0.2, momentum=0.99, projector=(512, 128),
                   predictor=(512, 128)),
}


def get_config(arg=None):
  arg = arg or 'simclr'
  if arg not in METHODS:
    raise ValueError(f'unknown variant {arg!r}; use one of {", ".join(METHODS)}')
  c = digits_simclr.get_config()
  c.method = ml_collections.ConfigDict(METHODS[arg])
  return c
