"""Fine-tuning strategies as optimizer groups: what trains, what is frozen, how fast.

  scratch       structure transfer: the source architecture, fresh weights, all trains
  linear_probe  source backbone frozen (BatchNorm statistics too), fresh head trains
  finetune      source backbone and fresh head train (backbone lr x `backbone_lr_mult`)
  lp_ft         linear_probe first, then finetune from the probed head (Kumar et al. 2022)
"""

STRATEGIES = ('scratch', 'linear_probe', 'finetune', 'lp_ft')


def check(strategy):
  if strategy not in STRATEGIES:
    raise ValueError(f'unknown strategy {strategy!r}; use one of {STRATEGIES}')


def loads_source(strategy):
  check(strategy)
  return strategy != 'scratch'


def groups(strategy, backbone_lr_mult=1.0, probe_lr_mult=1.0):
  """The `(regex, lr multiplier | None)` groups of `tlu.transfer.freeze.masked_optimizer`.

  probe_lr_mult scales the head's lr when the backbone is frozen: a linear probe
  on fixed features wants a much larger step than fine-tuning does.
  """
  check(strategy)
  if strategy == 'linear_probe':
    return (('backbone/.*', None), ('head/.*', probe_lr_mult))
  if strategy == 'finetune' and backbone_lr_mult != 1.0:
    return (('backbone/.*', backbone_lr_mult),)
  return ()
