"""Semi-supervised CIFAR-10 at 40 / 250 / 4,000 labels on a WideResNet-28-2, FixMatch's recipe:
`python -m experiments.semi --config=configs/cifar10_semi.py[:<method>]`, <method> one of
configs/mnist_semi.py's METHODS (default fixmatch). Data: TFDS `cifar10`, prepared once
without TensorFlow (`python -m experiments.prepare --config=configs/prepare.py:cifar10
--config.path=cifar-10-python.tar.gz`; README "Datasets").

Published (not measured here), FixMatch (Sohn et al. 2020, Table 2, CIFAR-10 error rate,
RandAugment variant, mean over 5 folds): 13.81 ± 3.37 at 40 labels, 5.07 ± 0.65 at 250,
4.26 ± 0.05 at 4,000 (accuracy 86.19 / 94.93 / 95.74).

Recipe (FixMatch section 4 and appendix B.1; USB's `config/classic_cv/fixmatch/`): 64
labelled + 7 x 64 unlabelled images per step, threshold 0.95, lambda_u 1, SGD with
Nesterov momentum 0.9, lr 0.03 with FixMatch's cosine lr cos(7 pi k / 16 K), weight decay
5e-4 on kernels only (USB's `no_weight_decay`: no BatchNorm or bias), 2^20 steps;
weak view flip + translate by up to 12.5% (reflect padding), strong view RandAugment (two
random ops of the 14, random magnitudes) then Cutout. Each other method keeps its own
paper's / USB's defaults (tlu/methods/<method>.py) on this shared recipe.

Protocol: the labelled examples are drawn per class and seed from the first 45,000
training images, which are also the unlabelled set; the last 5,000 training images are
the validation split for choosing; the test split (10,000) gives the number.

Known differences from FixMatch / USB: 45,000 unlabelled images, not 50,000 (5,000 are
held out for validation); the number scored is the trained weights at the last step
(`test_accuracy`) and at the best validation step (`selected_test_accuracy`), not an EMA
copy of the weights (FixMatch and USB evaluate an EMA model with decay 0.999) nor the
median over the last 20 checkpoints; one seed per size here, 5 folds in the paper.
2^20 steps are a multi-day GPU budget: size a run with `--config.task.steps`, and resume it
with the same command (cells resume).
"""

import ml_collections
from ml_collections import config_dict

from configs import digits_supervised, mnist_semi

LABELS_PER_CLASS = (4, 25, 400)   # 40 / 250 / 4,000 labels on 10 classes


def get_config(arg=None):
  method = arg or 'fixmatch'
  c = ml_collections.ConfigDict()
  c.dataset = digits_supervised.dataset('cifar10')
  c.dataset.train_split = 'train[:45000]'
  c.validation_split = 'train[45000:]'
  c.methods = (method,)
  c.labels_per_class = LABELS_PER_CLASS
  c.seeds = (0,)
  c.source = ''
  c.source_step = config_dict.placeholder(int)
  c.dont_load = ('head/.*',)
  c.task = ml_collections.ConfigDict(dict(
      model=dict(name='wideresnet', depth=28, widen_factor=2, dtype='bfloat16',
                 input_mean=(0.4914, 0.4822, 0.4465), input_std=(0.2471, 0.2435, 0.2616)),
      optimizer=dict(name='sgd', lr=0.03, momentum=0.9, weight_decay=5e-4,
                     schedule='fixmatch_cosine', warmup_steps=0, grad_clip_norm=0.0),
      steps=2**20, batch_size=64, eval_batch_size=1000,
      augment=dict(flip_prob=0.5, affine_prob=1.0, translate_frac=0.125,
                   affine_fill='mirror'),   # the supervised baseline: the weak view
      log_every=1000, eval_every=5000, checkpoint_every=5000, keep_checkpoints=2,
      progress=True))
  for name, block in mnist_semi.method_blocks(mu=7, weak='flip_translate',
                                              strong='randaugment').items():
    c[name] = ml_collections.ConfigDict(block)
  return c
