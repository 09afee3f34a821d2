"""Self-supervised pretraining of the small CNN on the embedded 8x8 digits, without labels.

`python -m experiments.pretrain --config=configs/digits_ssl.py:<method>` with <method>
one of the variants below (default simclr). Every method shares the data, backbone,
augmentation and evaluators (kNN, linear probe on all labels and on 10 labels per class,
k-means; BatchNorm in inference mode) and, but for SimSiam, the optimizer and step
budget; the method block differs, Barlow Twins and VICReg crop harder (`CROPS`), and
SimSiam trains with SGD (`OPTIMIZERS`) for twice the steps (`STEPS`) with its predictor
at the peak lr (`UNSCHEDULED`).
The backbone pools globally, as a ResNet: three 3x3 conv blocks (64, 128, 256 channels,
BatchNorm, ReLU, 2x2 max-pool) averaged over positions into 256-d features, no fc layer,
so multi-crop's 6x6 local crops go through the same weights as the 8x8 views; its
convolutions run as im2col matmuls (`conv='matmul'`, several times faster on CPU for
these small maps, same parameters). The default, simclr, is the reference run: on
tlu_digits (seed 0, about three minutes on a 2-core CPU) k-means ACC 0.91,
10-labels-per-class probe 0.94 (raw pixels 0.79 / 0.90). Its projector is linear (128,),
which keeps the backbone features in the space NT-Xent shapes; augmentations are mild
crops and warps, which 8x8 digits survive. Every run also trains solo-learn's online
linear probe (`online_probe`: a linear classifier on stop-gradient backbone features,
its loss added to the method's, at the method's optimizer and lr; the backbone trains as
without it) and reports its test accuracy as `online_probe_accuracy`. Measured, every
method: docs/results.md.
"""

import ml_collections

from configs import digits_supervised

METHODS = {
    'simclr': dict(name='simclr', temperature=0.5, projector=(128,)),
    'mocov3': dict(name='mocov3', temperature=0.2, momentum=0.99, projector=(512, 128),
                   predictor=(512, 128)),
    # BYOL: the paper's tau_base 0.996 is for 300+ epochs; 0.99 for short runs.
    'byol': dict(name='byol', momentum=0.99, projector=(512, 128), predictor=(512, 128)),
    # SimSiam: the paper's CIFAR widths, a 2048-d projection and a predictor whose hidden
    # layer is a quarter of it (Chen & He 2021, appendix). Narrower heads (128-d projection,
    # 32-d bottleneck) leave the backbone features at an effective rank of ~11.
    'simsiam': dict(name='simsiam', projector=(2048, 2048), predictor=(512, 2048)),
    # Barlow Twins and VICReg: the paper's loss weights, a wide projector (their 8192s).
    'barlow_twins': dict(name='barlow_twins', off_diagonal_weight=5e-3,
                         projector=(1024, 1024)),
    'vicreg': dict(name='vicreg', invariance_weight=25.0, variance_weight=25.0,
                   covariance_weight=1.0, gamma=1.0, eps=1e-4, projector=(1024, 1024)),
    # DINO: a GELU projector to a 64-d bottleneck with BatchNorm (the reference code's
    # use_bn_in_head; without it this run collapses to a uniform teacher), K = 1024 outputs;
    # the paper's temperatures and centring; teacher momentum 0.99 for short runs.
    'dino': dict(name='dino', projector=(512, 512, 64), batch_norm=True, num_prototypes=1024,
                 student_temperature=0.1, teacher_temperature=0.04, center_momentum=0.9,
                 momentum=0.99),
    # SwAV: 100 prototypes for 10 classes (a 256 batch fills each ~2.5 times), the paper's
    # tau, eps and 3 Sinkhorn iterations; prototypes frozen for the first epoch (5 steps).
    'swav': dict(name='swav', projector=(512, 128), num_prototypes=100, temperature=0.1,
                 epsilon=0.05, sinkhorn_iterations=3, freeze_prototypes_steps=5),
    # DeepCluster v2: SwAV's projector, 3 heads of 100 prototypes (solo-learn's 3 x 3000 for
    # ImageNet), tau 0.1 and 10 k-means iterations; k-means runs every epoch (5 steps of 256
    # over the 1437 train digits), so the loss starts at the second epoch.
    'deepclusterv2': dict(name='deepclusterv2', projector=(512, 128),
                          num_prototypes=(100, 100, 100), temperature=0.1, kmeans_iters=10),
    # Supervised contrastive (reads the labels): the paper's tau 0.1.
    'supcon': dict(name='supcon', temperature=0.1, projector=(512, 128)),
}


def base():
  """The shared part: data, backbone, optimizer, augmentation, steps, evaluators."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = digits_supervised.dataset('tlu_digits')
  c.method = ml_collections.ConfigDict(dict(name='simclr', temperature=0.5, projector=(128,)))
  c.model = ml_collections.ConfigDict(dict(name='cnn', use_bn=True, widths=(64, 128, 256),
                                           features=0, pool='global', conv='matmul'))
  c.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', lr=2e-3, weight_decay=0.05, schedule='cosine', warmup_steps=20,
      grad_clip_norm=0.0, unscheduled=()))
  c.batch_size = 256
  c.steps = 500
  # tlu.data.augment options on top of the `digits` preset (any AugmentConfig field).
  c.augment = ml_collections.ConfigDict(dict(
      preset='digits', crop_scale=(0.8, 1.0), affine_prob=0.8, rotate_deg=10.0, shear_deg=5.0,
      translate_frac=0.05, noise_prob=0.5, noise_std=0.05))
  c.eval_batch_size = 360
  # Evaluation instances (tlu/evaluators): fitted on the labelled train split, scored on
  # test, BatchNorm in inference mode; the online probe's head scored on test.
  c.evals = ml_collections.ConfigDict(dict(
      knn=dict(type='knn', k=20, weighting='temperature', temperature=0.07),
      linear_probe=dict(type='linear_probe', probe_input='l2', l2=1e-4, steps=500),
      few_label_probe=dict(type='few_label_probe', labels_per_class=10, probe_input='l2',
                           l2=1e-3, trials=5, seed=0, steps=500),
      kmeans=dict(type='kmeans', splits=('train', 'test'), num_clusters=10, n_init=20, seed=0),
      online_probe=dict(type='classification', head='online_probe', prefix='online_probe_')))
  c.online_probe = True        # online linear probe (off: drop evals.online_probe too)
  c.pixel_baseline = True      # also score raw pixels (summary.json: pixels_*)
  c.log_every = 25
  c.eval_every = 250
  c.checkpoint_every = 250
  c.keep_checkpoints = 2
  c.progress = True
  return c


# Harder crops for the redundancy-reduction methods (their papers crop at scale 0.08-1).
# With crops of 0.8-1 their decorrelation terms spread the within-class variation over
# the features (class variance ~1/3 of the total), and k-means of the train split's
# features, scored with its labels, sits at 0.75-0.76; for Barlow Twins (seed 0) crops of
# 0.3-1 raise it to 0.90 (the numbers: docs/results.md).
CROPS = {'barlow_twins': (0.3, 1.0), 'vicreg': (0.3, 1.0)}
# SimSiam's predictor at the peak lr throughout (Chen & He 2021 section 4.2, the reference
# code's --fix-pred-lr).
UNSCHEDULED = {'simsiam': ('predictor/.*',)}
# SimSiam trains with SGD (momentum 0.9) as in the paper (Chen & He 2021, appendix: CIFAR
# weight decay 5e-4) and for twice the steps (the paper trains 800 epochs); lr 0.1 and
# 1000 steps were chosen on training-rows k-means ACC at seeds 0 and 1 (docs/results.md).
OPTIMIZERS = {'simsiam': dict(name='sgd', lr=0.1, weight_decay=5e-4)}
STEPS = {'simsiam': 1000}

DIGITS_VIEW = dict(preset='digits', crop_scale=(0.8, 1.0), affine_prob=0.8, rotate_deg=10.0,
                   shear_deg=5.0, translate_frac=0.05, noise_prob=0.5, noise_std=0.05)
# Multi-crop variants: 2 global 8x8 views and 4 local 6x6 crops through the one globally
# pooled backbone (DINO's and SwAV's multi-crop, Caron et al. 2020).
MULTICROP = dict(augment=dict(views=(DIGITS_VIEW, DIGITS_VIEW),
                              local={**DIGITS_VIEW, 'crop_scale': (0.3, 0.6)}, local_crops=4,
                              local_size=6))
# DeepCluster v2 reads 'indexed' batches (its memory bank is per example), which carry
# no labels: the house's online probe (labelled batches only) is off, its evaluator
# dropped; the offline evaluators (kNN, probes, k-means) score it as the others.
NO_ONLINE_PROBE = ('deepclusterv2',)
VARIANTS = {'dino_multicrop': ('dino', MULTICROP), 'swav_multicrop': ('swav', MULTICROP)}


def get_config(arg=None):
  arg = arg or 'simclr'
  if arg not in METHODS and arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r}; use one of '
                     f'{", ".join((*METHODS, *VARIANTS))}')
  method, overrides = VARIANTS.get(arg, (arg, {}))
  c = base()
  c.method = ml_collections.ConfigDict(METHODS[method])
  if method in CROPS:
    c.augment.crop_scale = CROPS[method]
  c.optimizer.unscheduled = UNSCHEDULED.get(method, ())
  c.optimizer.update(OPTIMIZERS.get(method, {}))
  c.steps = STEPS.get(method, c.steps)
  if method in NO_ONLINE_PROBE:
    c.online_probe = False
    del c.evals['online_probe']
  if 'augment' in overrides:
    c.augment = ml_collections.ConfigDict(overrides['augment'])
  c.model.update(overrides.get('model', {}))
  return c
