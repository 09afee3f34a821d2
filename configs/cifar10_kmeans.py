"""k-means on SimCLR CIFAR-10 features: SCAN's "pretext + k-means" baseline.

`python -m experiments.cluster --config=configs/cifar10_kmeans.py --config.source=<workdir of configs/cifar10_ssl.py:simclr>`
Target: ACC 65.9% (± 5.7), NMI 59.8%, ARI 50.9% (Van Gansbeke et al. 2020, SCAN,
Table 3, "Pretext + K-means", SimCLR ResNet-18 pretext on CIFAR-10), not yet
measured by this project.
Protocol: backbone features (512-d, after global average pooling) of the 10,000
test images, L2-normalised, k = 10, k-means++ with 10 restarts, Hungarian-matched
accuracy; SCAN evaluates on the test split as here. Without --config.source the
1000-epoch pretraining of configs/cifar10_ssl.py:simclr runs first (~10 h on one A100).
k-means itself takes seconds on one GPU. Data: the CIFAR page's
`cifar-10-python.tar.gz` from https://www.cs.toronto.edu/~kriz/cifar.html, prepared once
without TensorFlow: `python -m experiments.prepare --config=configs/prepare.py:cifar10
--config.path=cifar-10-python.tar.gz` (writes TFDS `cifar10`; README "Datasets").
"""

from configs import cifar10_ssl, digits_cluster, digits_supervised


def get_config(arg=None):
  del arg
  c = digits_cluster.get_config()
  c.dataset = digits_supervised.dataset('cifar10')
  c.pretrain = cifar10_ssl.get_config('simclr')
  c.algorithms = ('kmeans', 'spectral')   # SCAN: configs/cifar10_scan.py
  c.rows = 'test'
  c.pca_components = 64
  c.batch_size = 1000
  c.tsne = True
  return c
