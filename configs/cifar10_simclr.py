"""SimCLR, ResNet-18 (CIFAR stem), CIFAR-10: `python -m experiments.pretrain --config=configs/cifar10_simclr.py`.

Published (not measured here; the data needs a one-time `tfds build`):
  * default (solo-learn protocol): 90.7% linear accuracy after 1000 epochs
    (solo-learn's SimCLR ResNet-18 CIFAR-10 result, *online* linear eval). tlu
    reports the *offline* protocol: L-BFGS logistic regression on frozen, non-
    augmented backbone features of the full train split, scored on the test
    split (`linear_probe_accuracy`); expect it within about a point of online.
  * `:knn200` (lightly's benchmark protocol): kNN accuracy 0.848 after 200 epochs
    at batch 512, k=200 cosine neighbours with temperature-weighted votes (T=0.1).
Protocol: global batch 256 (knn200: 512); LARS, peak lr 0.4 x B/256 (solo-learn),
10 warm-up epochs then cosine, weight decay 1e-5 excluding biases and BatchNorm
(and from LARS adaptation); projector 2048 -> 2048 -> 256 (ReLU), NT-Xent
temperature 0.2; augmentations on device, per view: random-resized crop
(0.08-1, ratio 3/4-4/3) to 32x32, horizontal flip p=0.5, colour jitter
(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2, no blur (solo-learn's CIFAR recipe,
which also solarizes one view p=0.2: not used here). bfloat16 compute.
Hardware: ~10 h for 1000 epochs on one A100 or a TPU v4-8; ~2 h for knn200.
"""

import ml_collections

from configs import digits_ssl, digits_supervised

TRAIN_IMAGES = 50_000


def get_config(arg=None):
  c = digits_ssl.get_config()
  batch, epochs = (512, 200) if arg == 'knn200' else (256, 1000)
  c.dataset = digits_supervised.dataset('cifar10')
  c.model.update(dict(name='resnet18', stem='cifar', width=64, dtype='bfloat16'))
  c.method.update(dict(projector=(2048, 2048, 256), temperature=0.2))
  del c.model['use_bn'], c.model['features']
  c.batch_size = batch
  c.steps = epochs * TRAIN_IMAGES // batch
  c.optimizer.update(dict(name='lars', lr=0.4, lr_scaling='linear', base_batch_size=256,
                          weight_decay=1e-5, momentum=0.9, schedule='cosine',
                          warmup_steps=10 * TRAIN_IMAGES // batch))
  c.augment = ml_collections.ConfigDict(dict(preset='simclr_cifar'))
  c.eval_batch_size = 1000
  c.evaluators = ml_collections.ConfigDict(dict(
      knn=dict(k=200, weighting='temperature', temperature=0.1),
      linear_probe=dict(probe_input='l2', l2=1e-4, steps=500),
      kmeans=dict(num_clusters=10, n_init=10, rows='test', seed=0)))
  c.pixel_baseline = False
  c.log_every, c.eval_every, c.checkpoint_every = 100, 20 * TRAIN_IMAGES // batch, 2000
  return c
