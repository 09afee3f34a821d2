"""Semi-supervised learning on the embedded 28x28 MNIST digits (`tlu_mnist`): few labels,
the rest of the training split unlabelled.

`python -m experiments.semi --config=configs/mnist_semi.py[:method]` runs every method of
`METHODS` (or one) at 4 and 10 labels per class and every label (0), seed 0; labelled
examples are drawn per class and seed from the 3,500 training digits, and every training
image is also in the unlabelled set (USB's convention). The validation split (500) is
for choosing; the test split (1,000) gives the number.

Recipe: FixMatch's (Sohn et al. 2020) where it fits a 2-core CPU. The paper's batch of 64
labelled + 448 unlabelled (mu = 7) and 2^20 steps are a GPU budget; here B = 32, mu = 3 and
STEPS steps, a budget and not a change of protocol (docs/results.md says which was used).
SGD with Nesterov momentum 0.9, weight decay 5e-4 and FixMatch's cosine
lr = 0.03 cos(7 pi k / 16 K); each method's own hyperparameters are its paper's / USB's
defaults (tlu/methods/<method>.py). Digits are not mirror-invariant: the weak view (also
the supervised baseline's augmentation) is a translation of up to 12.5% of the side, the strong view that and RandAugment (two ops) and
Cutout, no flips. `:tiny` is a smoke run on the 8x8 digits (tests).

`--config.source=<run dir>` starts every cell from a tlu run's (or a converted
checkpoint's) backbone, its head fresh: USB's pretrained-backbone setting, e.g. a SimCLR
run of `configs/digits_ssl.py` pretrained on the same unlabelled images.
"""

import ml_collections
from ml_collections import config_dict

from configs import digits_supervised

METHODS = ('supervised', 'pseudolabel', 'meanteacher', 'mixmatch', 'uda', 'fixmatch',
           'flexmatch', 'freematch', 'softmatch')
STEPS = 2000
WEAK = 'translate'
STRONG = 'randaugment_noflip'


def method_blocks(mu, weak=WEAK, strong=STRONG):
  """{method: its config block}: the shared view and ratio settings, each method's defaults."""
  semi = dict(mu=mu, weak=weak, strong=strong)
  return {
      'supervised': dict(name='supervised', label_smoothing=0.0, head_l2_scale=0.0),
      'pseudolabel': dict(name='pseudolabel', **semi),
      'meanteacher': dict(name='meanteacher', **semi),
      'mixmatch': dict(name='mixmatch', **semi),
      'uda': dict(name='uda', **semi),
      'fixmatch': dict(name='fixmatch', **semi),
      'flexmatch': dict(name='flexmatch', **semi),
      'freematch': dict(name='freematch', **semi),
      'softmatch': dict(name='softmatch', **semi),
      # SimCLRv2's distillation: not in METHODS, it needs a teacher run
      # (`--config.methods='("distill",)' --config.distill.teacher=<run dir>`).
      'distill': dict(name='distill', teacher='', teacher_step=config_dict.placeholder(int),
                      temperature=1.0, label_weight=0.0, **semi),
  }


def get_config(arg=None):
  tiny = arg == 'tiny'
  c = ml_collections.ConfigDict()
  c.dataset = digits_supervised.dataset('tlu_digits' if tiny else 'tlu_mnist')
  c.validation_split = 'test' if tiny else 'validation'   # tlu_digits has no validation split
  c.methods = ('supervised', 'fixmatch') if tiny else (
      (arg,) if arg else METHODS)
  c.labels_per_class = (4,) if tiny else (4, 10, 0)
  c.seeds = (0,)
  c.source = ''                      # a run directory: every cell starts from its backbone
  c.source_step = config_dict.placeholder(int)
  c.dont_load = ('head/.*',)
  steps = 24 if tiny else STEPS
  c.task = ml_collections.ConfigDict(dict(
      model=dict(name='cnn', use_bn=True, widths=(8, 16) if tiny else (32, 64),
                 features=32 if tiny else 128, pool='flatten'),
      optimizer=dict(name='sgd', lr=0.03, momentum=0.9, weight_decay=5e-4,
                     schedule='fixmatch_cosine', warmup_steps=0, grad_clip_norm=0.0),
      steps=steps, batch_size=8 if tiny else 32, eval_batch_size=360 if tiny else 500,
      augment=dict(affine_prob=1.0, translate_frac=0.125, affine_fill='constant'),   # supervised
      log_every=4 if tiny else 100, eval_every=12 if tiny else 250,
      checkpoint_every=steps if tiny else 500, keep_checkpoints=1, progress=not tiny))
  for name, block in method_blocks(mu=2 if tiny else 3).items():
    c[name] = ml_collections.ConfigDict(block)
  if tiny:
    c.fixmatch.strong = 'translate_strong'
  return c
