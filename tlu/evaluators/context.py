"""What every evaluator may use: the model, the mesh, the labelled splits, cached features.

`fixed` features (e.g. raw pixels) let the same evaluators score a baseline that no
model computes; evaluators that need the model itself then do not apply.
"""

import dataclasses
from typing import Any, Optional

import jax

from tlu.evaluate.features import extract_features


@dataclasses.dataclass
class Context:
  """model: tlu.models.Model; train/test: labelled random-access sources ({'image', 'label'});
  num_classes: C; batch_size: the global evaluation batch."""
  model: Any
  mesh: Any
  test: Any
  num_classes: int
  batch_size: int
  train: Optional[Any] = None
  fixed: Optional[dict] = None   # {'train'|'test': (features, labels)}: score these instead
  _features: dict = dataclasses.field(default_factory=dict)

  def features(self, state, split):
    """(features (N, F) float32 numpy, labels (N,)) of `split` ('train' | 'test') under `state`.

    Cached for the state's step, so several evaluators extract each split once.
    """
    if self.fixed is not None:
      return self.fixed[split]
    step = int(jax.device_get(state.step))
    key = (split, step)
    if key not in self._features:
      self._features = {k: v for k, v in self._features.items() if k[1] == step}
      self._features[key] = extract_features(self.model, state.variables, getattr(self, split),
                                             self.batch_size, self.mesh)
    return self._features[key]
