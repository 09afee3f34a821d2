"""Self-supervised pretraining on the embedded 28x28 MNIST digits (`tlu_mnist`) and on their
colour-textured copies (`tlu_mnist_m`), where raw pixels do not already win.

`python -m experiments.pretrain --config=configs/mnist_ssl.py:<method>` with <method> one
of `METHODS` (default simclr), or `<method>_mnist_m` for the same run on tlu_mnist_m.
Every run also scores raw pixels with the same evaluators (`pixel_baseline`: summary.json
`pixels_*`), the row every method must beat: kNN (k = 20), a linear probe on all labels,
a 10-labels-per-class probe (5 draws) and k-means (train + test rows) on the backbone's
features, BatchNorm in inference mode, labels read by the evaluators only.

Recipe: configs/digits_ssl.py's (the same methods, heads, optimizer, augmentation and
online probe), on 3,500 training images of 28x28 instead of 1,437 of 8x8. Budget for a
2-core CPU (one run in a few minutes): the globally pooled CNN at widths (32, 64, 128)
(digits_ssl's 64 / 128 / 256 quartered in compute), batch 128, `STEPS` steps; a budget,
not a change of protocol. NNCLR, ReSSL and W-MSE take solo-learn's hyperparameters
(tlu/methods/<method>.py) with queues of 4,096 and W-MSE's whitening over 128 rows.
Digits are not mirror-invariant: no flips (the `digits` preset). Measured: docs/results.md.
"""

import ml_collections

from configs import digits_ssl, digits_supervised

METHODS = {
    **{m: block for m, block in digits_ssl.METHODS.items() if m != 'supcon'},
    'nnclr': dict(name='nnclr', temperature=0.2, queue_size=4096, projector=(512, 128),
                  predictor=(512, 128)),
    'ressl': dict(name='ressl', temperature_q=0.1, temperature_k=0.04, momentum=0.99,
                  queue_size=4096, projector=(512, 128)),
    'wmse': dict(name='wmse', projector=(512, 64), w_size=128, w_iter=1, w_eps=0.0),
}
STEPS = 600


def get_config(arg=None):
  arg = arg or 'simclr'
  method = arg[:-len('_mnist_m')] if arg.endswith('_mnist_m') else arg
  if method not in METHODS:
    raise ValueError(f'unknown variant {arg!r}; use one of {", ".join(METHODS)}, '
                     'each also as <method>_mnist_m')
  base = method if method in digits_ssl.METHODS else 'simclr'
  c = digits_ssl.get_config(base)
  c.method = ml_collections.ConfigDict(METHODS[method])
  c.dataset = digits_supervised.dataset('tlu_mnist_m' if arg.endswith('_mnist_m') else 'tlu_mnist')
  c.model.widths = (32, 64, 128)
  c.batch_size = 128
  c.steps = STEPS * (2 if method == 'simsiam' else 1)   # SimSiam: twice, as digits_ssl's
  if method == 'swav':   # prototypes frozen for the first epoch, as digits_ssl's
    c.method.freeze_prototypes_steps = 3500 // c.batch_size
  c.eval_every = c.steps
  c.checkpoint_every = c.steps // 2
  c.evals.kmeans.n_init = 10
  return c
