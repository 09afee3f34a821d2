"""Backbone features of a dataset split, from any run directory's checkpoint."""

from tlu.data import subsets
from tlu.evaluate.features import extract_features
from tlu.models import build_model
from tlu.transfer.pretrained import load_pretrained


def features_of_run(workdir, ds, split, *, batch_size=256, mesh, step=None, config_dir=None):
  """(features (N, F) float32, labels (N,)) of dataset config `ds`'s `split` through `workdir`'s backbone.

  The architecture comes from the run's config.json; heads are not needed (the
  backbone output is the feature), so any run -- supervised, contrastive,
  adapted -- can be measured the same way. config_dir: see `load_pretrained`.
  """
  variables, model_cfg, _ = load_pretrained(workdir, step, config_dir)
  model = build_model({**model_cfg, 'num_classes': None, 'projector': None, 'domain_head': None})
  variables = {'params': {'backbone': variables['params']['backbone']},
               'batch_stats': {k: v for k, v in variables['batch_stats'].items()
                               if k == 'backbone'}}
  return extract_features(model, variables, subsets.task_source(ds, split), batch_size, mesh)
