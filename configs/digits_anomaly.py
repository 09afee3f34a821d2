"""One-class anomaly detection on tlu_digits: each digit in turn is normal, the other nine anomalies.

Scores on frozen features (higher = more anomalous): distance to the k-th
nearest normal training example, Mahalanobis distance to the normal class's
Gaussian, and distance to the nearest of `kmeans_clusters` k-means centroids of
the normal class. Each is computed on raw pixels and on contrastive features
(the backbone of `--config.source=<run dir>`, or of the task `pretrain`
trained first in <workdir>/pretrain); AUROC per normal class and the mean.
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
  c.knn_k = 5
  c.mahalanobis_shrinkage = 0.1
  c.kmeans_clusters = 5
  c.batch_size = 360
  return c
