"""Supervised small CNN on the embedded 8x8 digits: the foundation's reference run.

Expected: >= 97% test accuracy on tlu_digits in well under a minute on a 2-core CPU.
Variants: `:rgb32` trains on the same digits at 32x32x3 (the input shape of tlu_digits_m).
"""

import ml_collections
from ml_collections import config_dict


def dataset(name='tlu_digits', classes=(), image_size=0, channels=0):
  """`classes`: the labels that make up the task (relabelled 0..K-1); () = all.

  image_size / channels fit every image to (size, size, channels) on the host (0 = as stored).
  """
  return ml_collections.ConfigDict(dict(
      name=name, data_dir=config_dict.placeholder(str), train_split='train', eval_split='test',
      classes=tuple(classes), image_size=image_size, channels=channels))


def cnn():
  """The small CNN, its last conv map flattened into the 512-d features (fixes the input size)."""
  return ml_collections.ConfigDict(dict(name='cnn', use_bn=True, widths=(64, 128), features=512,
                                        pool='flatten'))


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = dataset('tlu_digits/32x32_rgb' if arg == 'rgb32' else 'tlu_digits')
  c.method = ml_collections.ConfigDict(dict(name='supervised', label_smoothing=0.0,
                                            head_l2_scale=0.0))
  c.model = cnn()
  c.freeze = ()                # (regex, None | lr multiplier) pairs; None = frozen
  c.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', lr=2e-3, weight_decay=1e-4, schedule='cosine', warmup_steps=20,
      grad_clip_norm=0.0))
  c.batch_size = 128
  c.eval_batch_size = 360
  c.steps = 300
  c.augment = ''               # an augmentation preset of tlu.data.augment, '' for none
  c.evals = ml_collections.ConfigDict({'test': {'type': 'classification'}})   # tlu/evaluators
  c.log_every = 25
  c.eval_every = 100
  c.checkpoint_every = 100
  c.keep_checkpoints = 3
  c.progress = True
  return c
