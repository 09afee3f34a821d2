"""Rank candidate source runs for a target task without fine-tuning (LogME, LEEP, NCE, H-score):

  python -m experiments.rank_sources --config.sources="('runs/a', 'runs/b', 'runs/c')" \
      [--config.accuracies="(0.93, 0.88, 0.71)"] --workdir=<dir>

Every source is a tlu run directory (trained, or converted by experiments.convert); the
scores read its features (and its `head`'s class probabilities, for LEEP and NCE) on the
labelled training split of `dataset`, once. `accuracies`: the target accuracies the same
sources reached when fine-tuned (e.g. experiments.transfer's summary), in the same order;
given, report.md and summary.json hold each score's Kendall's tau with them.
What each score is: tlu/transfer/transferability.py.
"""

import ml_collections
from ml_collections import config_dict

from configs import digits_supervised
from tlu.transfer.transferability import SCORES


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.sources = ()                     # run directories of the candidate sources
  c.source_step = config_dict.placeholder(int)   # a checkpoint step (default: each latest)
  c.accuracies = ()                  # fine-tuned target accuracies of the sources, or ()
  c.dataset = digits_supervised.dataset('tlu_digits', classes=range(5, 10))   # the target
  c.scores = SCORES
  c.batch_size = 120                 # feature extraction
  return c
