"""DANN and SHOT, SVHN -> MNIST: `python -m experiments.adapt --config=configs/svhn_to_mnist.py:<method>`.

Published (not measured here):
  * dann: 73.85% MNIST test accuracy (Ganin & Lempitsky 2015, Table 1, SVHN -> MNIST).
  * shot: 98.9% (Liang et al. 2020, SHOT, digit table, SVHN -> MNIST); source only: 70.2%.
  * source_only / target_oracle: the lower and upper bounds, measured the same way.
Data: TFDS `svhn_cropped` (train, labelled) -> `mnist` (train split unlabelled for
adaptation, test split for accuracy). MNIST is fitted on the host to 32x32x3
(bilinear, grey replicated), the input shape of SVHN.
Protocol: the small CNN of this project (conv 64 -> conv 128 -> fc 512, BatchNorm)
in place of the papers' DTN/LeNet-style networks; SHOT's source model: 30 epochs,
batch 64, label smoothing 0.1; SHOT adaptation: 30 epochs over MNIST train, head
frozen, IM + 0.1 x pseudo-label CE (the reference code's digit setting), pseudo-labels
re-clustered every epoch;
DANN: 60,000 steps of 64 source + 64 target images, lambda_p = 2/(1+exp(-10p))-1.
Hardware: ~10 min per method on one GPU; ~2 h on a 2-core CPU.
Prepare once, without TensorFlow (README "Datasets"): `train_32x32.mat` and `test_32x32.mat`
(format 2) from http://ufldl.stanford.edu/housenumbers/ into a folder `svhn`, and MNIST's four
idx files (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-...`, from
http://yann.lecun.com/exdb/mnist/ or its mirror https://storage.googleapis.com/cvdf-datasets/mnist/)
into a folder `mnist`, then
  python -m experiments.prepare --config=configs/prepare.py:svhn --config.path=svhn
  python -m experiments.prepare --config=configs/prepare.py:mnist --config.path=mnist
(they write TFDS `svhn_cropped` and `mnist`).
"""

from configs import digits_supervised, digits_to_digits_m

SVHN_TRAIN, MNIST_TRAIN = 73_257, 60_000


def get_config(arg=None):
  c = digits_to_digits_m.get_config(arg)
  c.seeds = (0,)
  c.source_task.dataset = digits_supervised.dataset('svhn_cropped', image_size=32, channels=3)
  c.source_task.batch_size = 64
  for task in (c.source_task, c.target_oracle):
    task.model.widths = (64, 128)   # the protocol's network (the digits default is (32, 48))
  c.source_task.steps = 30 * SVHN_TRAIN // c.source_task.batch_size
  c.source_task.eval_every = c.source_task.steps // 10
  c.source_task.checkpoint_every = 2000
  c.source_task.eval_batch_size = 1000
  c.target = digits_supervised.dataset('mnist', image_size=32, channels=3)
  c.target_oracle.steps = 10 * MNIST_TRAIN // c.target_oracle.batch_size
  c.target_oracle.eval_batch_size = 1000
  c.target_oracle.checkpoint_every = 2000
  c.eval_batch_size = 1000
  c.dann.steps = 60_000
  c.shot.epochs = 30
  c.dann.update(dict(log_every=500, eval_every=6000, checkpoint_every=2000))
  c.shot.update(dict(log_every=100, eval_every=MNIST_TRAIN // 64, checkpoint_every=MNIST_TRAIN // 64))
  return c
