"""k-means and spectral clustering on the embedded 28x28 MNIST digits (`tlu_mnist`): raw pixels
vs PCA of pixels vs contrastive backbone features.

The cluster stage of configs/digits_cluster.py on tlu_mnist: without `--config.source`, its
SimCLR source (configs/digits_ssl.py's recipe on tlu_mnist's 3,500 training images, no
labels) is trained first in <workdir>/pretrain. Train and test rows (4,500) are clustered
together into 10 groups; spectral clustering takes the dense path at this size. SCAN and
self-labelling (`scan`, `scan_selflabel`) train with configs/digits_cluster.py's blocks
(chosen on tlu_digits, not measured here) on the 3,500 training images.
"""

from configs import digits_cluster, digits_supervised


def get_config(arg=None):
  del arg
  c = digits_cluster.get_config()
  c.dataset = digits_supervised.dataset('tlu_mnist')
  c.pretrain.dataset = digits_supervised.dataset('tlu_mnist')
  c.pca_components = 50
  c.batch_size = 500
  return c
