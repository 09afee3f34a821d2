"""The whole story on embedded data, the default experiment: `python -m experiments.pipeline`.

1. contrastive pretraining (SimCLR) on the unlabelled tlu_digits train images;
2. k-means of the learned features (vs raw pixels and PCA);
3. label efficiency on digits 5-9: the contrastive backbone vs a supervised
   digits 0-4 backbone vs scratch, linear probe and fine-tune, 1/5/10/all labels;
4. domain adaptation tlu_digits -> tlu_digits_m: source only, DANN, SHOT, oracle;
5. one-class anomaly detection on the learned features;
then report.md in the pipeline workdir. Each stage has its own sub-workdir and
resumes; a finished stage (its summary.json exists) is not recomputed.
Sized to finish in under 10 minutes on a 2-core laptop CPU.
"""

import ml_collections

from configs import (digits_anomaly, digits_cluster, digits_simclr, digits_to_digits_m,
                     digits_transfer)


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.pretrain = digits_simclr.get_config()
  c.pretrain.progress = False
  c.cluster = digits_cluster.get_config()
  c.cluster.tsne = True
  c.transfer = digits_transfer.get_config()
  c.transfer.strategies = ('linear_probe', 'finetune')   # + scratch, from the supervised sweep
  c.transfer.labels_per_class = (1, 5, 10, 0)
  c.transfer.seeds = (0, 1, 2)
  c.transfer.steps = 100
  c.adapt = digits_to_digits_m.get_config()
  c.anomaly = digits_anomaly.get_config()
  for stage in (c.cluster, c.anomaly):
    stage.pretrain = ml_collections.ConfigDict()   # features come from stage 1
  return c
