"""Self-supervised ResNet-18 (CIFAR stem) on CIFAR-10, solo-learn's recipes:
`python -m experiments.pretrain --config=configs/cifar10_ssl.py:<method>`, <method> one of
simclr (default), byol, simsiam, mocov3, barlow_twins, vicreg, dino, swav, or
simclr_knn200 (lightly's benchmark protocol). Data: the CIFAR page's
`cifar-10-python.tar.gz` from https://www.cs.toronto.edu/~kriz/cifar.html, prepared once
without TensorFlow: `python -m experiments.prepare --config=configs/prepare.py:cifar10
--config.path=cifar-10-python.tar.gz` (writes TFDS `cifar10`; README "Datasets").

Published (not measured here), solo-learn README, "Results", CIFAR-10 table, ResNet18,
1000 epochs, Acc@1 (online linear eval, acc@1: the linear classifier trained on
stop-gradient features during pretraining, scored on the test split):
  simclr 90.74, byol 92.58, simsiam 90.51, mocov3 93.10, barlow_twins 92.10,
  vicreg 92.07, dino 89.52, swav 89.17.
tlu reports the same protocol as `online_probe_accuracy` (`online_probe`, BatchNorm in
inference mode), beside kNN (k = 200, temperature-weighted cosine votes, T = 0.1:
InstDisc's protocol), an offline L-BFGS linear probe and k-means.
  simclr_knn200: kNN accuracy 0.848 after 200 epochs at batch 512 (lightly's benchmarks).

Protocol, every method (solo-learn scripts/pretrain/cifar/<method>.yaml): global batch
256, 1000 epochs, peak lr x B/256 with 10 warm-up epochs then cosine, weight decay
excluding biases and BatchNorm (and, with LARS, excluded from its adaptation); the
online probe at solo-learn's `classifier_lr` through a `freeze` entry
('online_probe/.*', classifier_lr / lr) (solo-learn scales both lrs by B/256, so the
ratio holds at any batch); two 32x32 views; bfloat16 compute. Per method (`RECIPES`):
optimizer, lr, classifier_lr, weight decay, heads, loss hyperparameters and solo-learn's
augmentation file: symmetric (crop 0.08-1, flip, jitter 0.8/0.8/0.8/0.2 p=0.8, grey
p=0.2, blur p=0.5), symmetric_weak (jitter 0.4/0.4/0.4/0.1), asymmetric (jitter
0.4/0.4/0.2/0.1, no blur, the second view solarized p=0.2), vicreg's own (crop 0.2-1,
solarize p=0.1).
Known differences from solo-learn: optax's LARS (trust coefficient 1e-3, no LARC
clipping; solo-learn: eta 0.02, clip_lr); the probe's weight is decayed like every
kernel (solo-learn: no decay); warm-up from 0 (solo-learn: 3e-5); blur kernels of 10% of
the side. Barlow Twins without solo-learn's loss scale 0.1 (λ = 0.0051 as theirs); SwAV
without its queue (3840 features from epoch 50); DINO without freezing its last layer in
the first epoch; MoCo v3's projector without solo-learn's affine-free output BatchNorm.
Hardware: ~10 h for 1000 epochs on one A100 or a TPU v4-8 (simclr; the others alike);
~2 h for simclr_knn200.
"""

import ml_collections

from configs import digits_ssl, digits_supervised

TRAIN_IMAGES = 50_000

# solo-learn's augmentation files (scripts/pretrain/cifar/augmentations/*.yaml).
SYMMETRIC = dict(preset='simclr_imagenet')   # the same ops and strengths
SYMMETRIC_WEAK = dict(preset='simclr_imagenet', brightness=0.4, contrast=0.4, saturation=0.4,
                      hue=0.1)
ASYMMETRIC = dict(views=('simclr_cifar', dict(preset='simclr_cifar', solarize_prob=0.2)))
VICREG_VIEWS = dict(preset='simclr_cifar', crop_scale=(0.2, 1.0), solarize_prob=0.1)

# method block, optimizer (name, lr at batch 256, classifier_lr, weight decay), augmentation.
RECIPES = {
    'simclr': (dict(name='simclr', temperature=0.2, projector=(2048, 256)),
               ('lars', 0.4, 0.1, 1e-4), SYMMETRIC),
    'byol': (dict(name='byol', momentum=0.99, projector=(4096, 256), predictor=(4096, 256)),
             ('lars', 1.0, 0.1, 1e-5), ASYMMETRIC),
    # solo-learn's SGD momentum default: 0.9 (solo/args/pretrain.py).
    'simsiam': (dict(name='simsiam', projector=(2048, 2048, 2048), predictor=(512, 2048)),
                ('sgd', 0.5, 0.1, 1e-5), SYMMETRIC_WEAK),
    'mocov3': (dict(name='mocov3', temperature=0.2, momentum=0.99, projector=(4096, 256),
                    predictor=(4096, 256)),
               ('lars', 0.3, 0.3, 1e-6), ASYMMETRIC),
    'barlow_twins': (dict(name='barlow_twins', off_diagonal_weight=0.0051,
                          projector=(2048, 2048, 2048)),
                     ('lars', 0.3, 0.1, 1e-4), ASYMMETRIC),
    'vicreg': (dict(name='vicreg', invariance_weight=25.0, variance_weight=25.0,
                    covariance_weight=1.0, gamma=1.0, eps=1e-4, projector=(2048, 2048, 2048)),
               ('lars', 0.3, 0.1, 1e-4), VICREG_VIEWS),
    # teacher temperature 0.07 (solo-learn's default, no warm-up), K = 4096, no BN in head.
    'dino': (dict(name='dino', projector=(2048, 2048, 256), batch_norm=False,
                  num_prototypes=4096, student_temperature=0.1, teacher_temperature=0.07,
                  center_momentum=0.9, momentum=0.9995),
             ('lars', 0.3, 0.1, 1e-6), ASYMMETRIC),
    # prototypes frozen for solo-learn's 2 epochs (set in get_config from the batch).
    'swav': (dict(name='swav', projector=(2048, 128), num_prototypes=3000, temperature=0.1,
                  epsilon=0.05, sinkhorn_iterations=3),
             ('lars', 0.6, 0.1, 1e-6), SYMMETRIC),
}
VARIANTS = {'simclr_knn200': 'simclr'}   # batch 512, 200 epochs


def get_config(arg=None):
  arg = arg or 'simclr'
  if arg not in RECIPES and arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r}; use one of {", ".join((*RECIPES, *VARIANTS))}')
  method, (opt, lr, classifier_lr, weight_decay), augment = RECIPES[VARIANTS.get(arg, arg)]
  batch, epochs = (512, 200) if arg == 'simclr_knn200' else (256, 1000)
  epochs_steps = lambda n: n * TRAIN_IMAGES // batch   # optimizer steps in n epochs
  c = digits_ssl.base()
  c.dataset = digits_supervised.dataset('cifar10')
  c.method = ml_collections.ConfigDict(method)
  if method['name'] == 'swav':
    c.method.freeze_prototypes_steps = epochs_steps(2)
  c.model = ml_collections.ConfigDict(dict(name='resnet18', stem='cifar', width=64,
                                           dtype='bfloat16'))
  c.batch_size = batch
  c.steps = epochs_steps(epochs)
  c.optimizer = ml_collections.ConfigDict(dict(
      name=opt, lr=lr, lr_scaling='linear', base_batch_size=256, weight_decay=weight_decay,
      momentum=0.9, schedule='cosine', warmup_steps=epochs_steps(10),
      grad_clip_norm=0.0))
  c.freeze = (('online_probe/.*', classifier_lr / lr),)
  c.augment = ml_collections.ConfigDict(augment)
  c.online_probe = True
  c.eval_batch_size = 1000
  c.evals = ml_collections.ConfigDict(dict(
      knn=dict(type='knn', k=200, weighting='temperature', temperature=0.1),
      linear_probe=dict(type='linear_probe', probe_input='l2', l2=1e-4, steps=500),
      kmeans=dict(type='kmeans', splits=('test',), num_clusters=10, n_init=10, seed=0),
      online_probe=dict(type='classification', head='online_probe', prefix='online_probe_')))
  c.pixel_baseline = False
  c.log_every, c.eval_every, c.checkpoint_every = 100, epochs_steps(20), 2000
  return c
