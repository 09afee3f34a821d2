"""k-means and spectral clustering on tlu_digits: raw pixels vs PCA of pixels vs contrastive
backbone features.

`--config.source=<run dir>` names the representation to cluster (any run's
backbone, at `--config.source_step`); with none, the task `pretrain` (SimCLR,
configs/digits_ssl.py) is trained first in <workdir>/pretrain. Rows are
clustered as in SCAN's "pretext + k-means":
L2-normalised features of train and test images together, k = number of classes,
k-means++ with `n_init` restarts; spectral clustering (`spectral`: a 10-nearest-neighbour
affinity, the normalised-Laplacian embedding with NJW's row normalisation, k-means on it) on
the same rows. Reference on raw pixels: ACC 0.79 / NMI 0.74.
Expected on contrastive features: ACC >= 0.90, NMI >= 0.85 (see README).
`scan` (in `algorithms`): SCAN's clustering step and self-labelling trained from the same
source in <workdir>/scan and <workdir>/scan_selflabel (`scan_blocks`), the head's argmax
scored on the same rows.
"""

import ml_collections
from ml_collections import config_dict

from configs import digits_ssl, digits_supervised


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = digits_supervised.dataset('tlu_digits')
  c.source = ''                       # run dir whose backbone gives the features; '' = pretrain
  c.source_step = config_dict.placeholder(int)   # checkpoint step of the source (None: latest)
  c.pretrain = digits_ssl.get_config()
  c.pretrain.progress = False
  c.pretrain.model = digits_supervised.cnn()   # the flattened CNN the digits configs share
  c.num_clusters = 0                  # 0 = number of classes
  c.n_init = 10
  c.max_iter = 300
  c.pca_components = 32
  c.algorithms = ('kmeans', 'spectral', 'scan')
  c.spectral = ml_collections.ConfigDict(dict(affinity='knn', n_neighbors=10, normalize='rows',
                                              n_init=10))
  c.rows = 'all'                      # 'all' (train + test) or 'test'
  c.batch_size = 360                  # feature extraction
  c.tsne = True
  c.scan, c.scan_selflabel = scan_blocks()
  return c


def scan_blocks():
  """SCAN's clustering step and self-labelling on the train split, from the source (the
  model is the source's). SCAN's values (Van Gansbeke et al. 2020, its CIFAR configs): K = 20
  neighbours, entropy weight 5, Adam at a constant lr 1e-4 with weight decay 1e-4,
  self-labelling threshold 0.99 with class balancing. Steps and augmentation are this
  repository's choice, measured on tlu_digits from the default SimCLR source (seed 0, all
  1,797 rows; SCAN ACC / self-labelled ACC, k-means 0.950):
    - SCAN_STEPS 600 at lr 1e-4 (about 50 s on a 2-core CPU, ~50 epochs of the 1,437 train
      images). With SCAN's strong augmentation (RandAugment, 2 ops, + Cutout 0.5: the
      `digits_strong` preset; `--config.scan.augment.randaugment_ops=2
      --config.scan.augment.cutout_frac=0.5` turns it on): 200 steps at 1e-4 0.74 (the head
      still soft: consistency 1.9, a uniform head's 2.3), 300 at 1e-3 0.75, 600 at 1e-4 0.80,
      1000 at 3e-4 0.80; Cutout and RandAugment wipe out much of an 8x8 digit. With a
      translation of up to 1/8 of the side alone (the default here), 600 at 1e-4: 0.955.
      Self-labelling from that run: 0.84 strong, 0.90 without Cutout, 0.94 translation alone;
    - SELFLABEL_STEPS 100 (batch 256, ~18 epochs, about 10 s): self-labelling did not raise
      ACC above the clustering step's in any setting measured here.
  """
  def block(method, steps, batch_size):
    return ml_collections.ConfigDict(dict(
        method=method, steps=steps, batch_size=batch_size, eval_batch_size=360,
        optimizer=dict(name='adam', lr=1e-4, weight_decay=1e-4, schedule='constant',
                       warmup_steps=0, grad_clip_norm=0.0, unscheduled=()),
        augment=dict(shift_frac=0.125, randaugment_ops=0, cutout_frac=0.0), log_every=25,
        eval_every=0, checkpoint_every=max(steps, 1), keep_checkpoints=1, progress=False))
  return (block(dict(name='scan', num_neighbors=20, entropy_weight=5.0), SCAN_STEPS, 128),
          block(dict(name='scan_selflabel', threshold=0.99, class_balancing=True),
                SELFLABEL_STEPS, 256))


SCAN_STEPS, SELFLABEL_STEPS = 600, 100
