"""One-class anomaly detection on features: `python -m experiments.anomaly --config=configs/digits_anomaly.py`.

Features: the backbone of `--config.source` (any run directory, at `--config.source_step`),
or of the task `config.pretrain`, trained first in `<workdir>/pretrain`. Scorers and
protocol: tlu/evaluate/anomaly_eval.py; summary.json: `<features>/<scorer>/mean_auroc`.
"""

import sys

import numpy as np

from experiments import common
from tlu.evaluate import anomaly_eval, run_features
from tlu.evaluate.features import l2_normalize
from tlu.train import mesh as mesh_lib, sweep

DEFAULT_CONFIG = 'configs/digits_anomaly.py'


def check(config, workdir, wired=False):
  """Every check before anything is written; returns (feature source, scorers)."""
  common.check_batch(config.batch_size)
  scorers = anomaly_eval.scorers(config.knn_k, config.mahalanobis_shrinkage,
                                 config.kmeans_clusters, config.seed)
  shape, _ = run_features.task_shape(config.dataset)
  common.check_workdir(workdir, config)
  return run_features.FeatureSource(config, workdir, shape, not wired), scorers


def run(config, workdir, plan):
  (source, scorers), ds, mesh = plan, config.dataset, mesh_lib.make_mesh()
  common.claim_workdir(workdir, config)
  backbone = source.backbone(mesh, should_stop=common.preempted)
  (pix_train, f_train, y_train), (pix_test, f_test, y_test) = run_features.pixels_and_features(
      backbone, ds, (ds.train_split, ds.eval_split), batch_size=config.batch_size, mesh=mesh)
  reps = {'raw pixels': (pix_train, pix_test),
          'contrastive features': (l2_normalize(f_train), l2_normalize(f_test))}
  rows, summary = anomaly_eval.auroc_table(reps, scorers, y_train, y_test)
  table, report = anomaly_eval.report(rows, np.unique(y_test), ds.name, backbone)
  print(table)
  sweep.write(workdir, summary, report)


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
