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
  c.algorithms = ('kmeans', 'spectral')
  c.spectral = ml_collections.ConfigDict(dict(affinity='knn', n_neighbors=10, normalize='rows',
                                              n_init=10))
  c.rows = 'all'                      # 'all' (train + test) or 'test'
  c.batch_size = 360                  # feature extraction
  c.tsne = True
  return c
