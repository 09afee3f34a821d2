"""The facts of one run that a method reads: one frozen record, part of the compile key.

`tlu.train.task` builds it from the task config and the splits and hands it to the
method's constructor (`Method(config, model, facts)`), and the `Trainer` keys its cache
of compiled steps on the config *and* the whole record, so a step compiled for one
sweep cell never serves a cell whose facts differ (another train size, another step
budget). A method reads `self.facts.<name>`; nothing reaches it as a loose argument.
"""

import dataclasses

from tlu.models.norm import Mode, train_mode


@dataclasses.dataclass(frozen=True)
class RunFacts:
  """num_steps: optimizer steps of the run (schedules: GRL's lambda, momentum, ramps);
  batch_size: the global training batch B; epoch_steps: steps per pass over the train split;
  num_examples: len(splits.train) (per-example state: pseudo-labels, banks, neighbours);
  num_unlabelled: examples of the unlabelled split of 'labelled_unlabelled' batches (the
  train split when the run has none); num_classes: K of the task; image_shape: (H, W, C)
  of the model input; frozen: the path regexes of frozen parameters, whose BatchNorm
  layers keep their running statistics in every training forward pass (`mode`);
  online_probe: the house trains the online linear probe beside the method.
  """
  num_steps: int
  batch_size: int
  epoch_steps: int = 1
  num_examples: int = 0
  num_unlabelled: int = 0
  num_classes: int = 0
  image_shape: tuple = ()
  frozen: tuple = ()
  online_probe: bool = False

  @property
  def mode(self) -> Mode:
    """What training forward passes give models as `train` (`tlu.models.norm.Mode`)."""
    return train_mode(self.frozen)
