"""Transfer digits 0-4 -> digits 5-9 with few labels: scratch vs linear probe vs fine-tune vs LP-FT.

`--config=configs/digits_transfer.py:<strategy>` runs one strategy (scratch,
linear_probe, finetune, lp_ft, gradual; what each trains, in which phases:
tlu/transfer/strategies.py); no argument runs the first four. Every strategy is run at `labels_per_class` in
{1, 5, 10, all (0)} and `seeds`; each phase is a supervised task
(`strategies.phase_config`); report.md holds the strategy x labels table (mean +- std
over seeds). Without `--config.source` the supervised task `source_task` (digits 0-4)
is trained first in <workdir>/source.
Measured (3 seeds, 2-core CPU, with commands): docs/results.md.
"""

import ml_collections
from ml_collections import config_dict

from configs import digits_supervised

STRATEGIES = ('scratch', 'linear_probe', 'finetune', 'lp_ft')


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.strategies = (arg,) if arg else STRATEGIES
  c.source = ''                      # workdir of a source run; '' = train one in <workdir>/source
  c.source_step = config_dict.placeholder(int)   # a checkpoint step of the source (default latest)
  c.source_task = digits_supervised.get_config()
  c.source_task.dataset = digits_supervised.dataset('tlu_digits', classes=range(5))
  c.source_task.progress = False
  c.dataset = digits_supervised.dataset('tlu_digits', classes=range(5, 10))
  c.labels_per_class = (1, 5, 10, 0)  # 0 = every training label
  c.seeds = (0, 1, 2)
  c.dont_load = ('head/.*',)          # specific layers: fresh for the target
  c.adapters = ()                     # e.g. ('in_channels',) for 1 -> 3 channel inputs
  c.head_l2_scale = 0.0               # > 0: the head sees scale * L2-normalised features
  c.head_init = 'fresh'               # 'imprint': source-loading strategies start the head at
                                      # the labelled examples' class means (needs head_l2_scale)
  c.backbone_lr_mult = 1.0            # finetune / lp_ft: backbone lr multiplier
  c.probe_lr_mult = 10.0              # linear_probe / LP stage of lp_ft: head lr multiplier
  c.steps = 150
  c.lp_steps = 100                    # lp_ft: linear-probe steps before fine-tuning
  # gradual: the head trains from the start, then the backbone from the top down (ULMFiT).
  c.unfreeze = ((50, ('backbone/fc/.*',)), (100, ('backbone/(conv|bn)[01]/.*',)))
  c.batch_size = 64
  c.eval_batch_size = 64
  c.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', lr=1e-3, weight_decay=1e-4, schedule='cosine', warmup_steps=10,
      grad_clip_norm=0.0))
  # The fine-tuning objective: 'supervised' (cross-entropy), 'l2sp' (Li et al. 2018: the
  # shared layers pulled toward the source weights by alpha, the rest decayed by beta),
  # 'bss' (Chen et al. 2019: + bss_weight * the squares of the bss_k smallest singular
  # values of the batch's features; add bss_weight=0.001, bss_k=1 here) or 'delta' (Li et
  # al. 2019: + alpha * the attention-weighted distance of the `layers`' outputs to the
  # source model's, beta decays the rest; add layers=('backbone/.*',), attention=True,
  # attention_batches=10 here). Each method's keys: tlu/methods/<name>.py.
  c.method = ml_collections.ConfigDict(dict(name='supervised', alpha=0.01, beta=0.01,
                                            shared=('backbone/.*',)))
  c.label_smoothing = 0.0            # the supervised method's, in every phase
  c.augment = ''
  c.progress = False
  return c
