"""SimCLR pretraining of the small CNN on the embedded 8x8 digits, without labels.

Expected on tlu_digits (seed 0, 2-core CPU, about 1.5 minutes; raw pixels in brackets,
same evaluation; docs/results.md): k-means ACC 0.96 (0.79), NMI 0.92 (0.74); linear probe
with 10 labels per class 0.967 (0.898), with all labels 0.992 (0.964); kNN 0.986 (0.975).
The projector is linear (128,), which keeps the backbone features in the space NT-Xent
shapes; augmentations are mild crops and warps, which 8x8 digits survive.
"""

import ml_collections

from configs import digits_supervised


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = digits_supervised.dataset('tlu_digits')
  c.method = ml_collections.ConfigDict(dict(name='simclr', temperature=0.5, projector=(128,)))
  c.model = ml_collections.ConfigDict(dict(name='cnn', use_bn=True, features=512))
  c.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', lr=2e-3, weight_decay=0.05, schedule='cosine', warmup_steps=20,
      grad_clip_norm=0.0))
  c.batch_size = 256
  c.steps = 500
  # tlu.data.augment options on top of the `digits` preset (any AugmentConfig field).
  c.augment = ml_collections.ConfigDict(dict(
      preset='digits', crop_scale=(0.8, 1.0), affine_prob=0.8, rotate_deg=10.0, shear_deg=5.0,
      translate_frac=0.05, noise_prob=0.5, noise_std=0.05))
  c.eval_batch_size = 360
  # tlu/evaluators/<name>.py and their keyword arguments; BatchNorm in inference mode.
  c.evaluators = ml_collections.ConfigDict(dict(
      knn=dict(k=20, weighting='temperature', temperature=0.07),
      linear_probe=dict(probe_input='l2', l2=1e-4, steps=500),
      few_label_probe=dict(labels_per_class=10, probe_input='l2', l2=1e-3, trials=5, seed=0,
                           steps=500),
      kmeans=dict(num_clusters=10, n_init=20, rows='all', seed=0)))
  c.pixel_baseline = True      # also score raw pixels (summary.json: pixels_*)
  c.log_every = 25
  c.eval_every = 250
  c.checkpoint_every = 250
  c.keep_checkpoints = 2
  c.progress = True
  return c
