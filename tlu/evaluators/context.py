"""What every evaluator may use: the model, the mesh, the named labelled splits, cached features.

`fixed` features (e.g. raw pixels) let the same evaluators score a representation that
no model computes; evaluators that need the model itself then do not apply.
"""

import dataclasses
from typing import Any, Optional

import jax

from tlu.evaluate.features import extract_features


@dataclasses.dataclass
class Context:
  """model: tlu.models.Model; splits: {name: labelled random-access source ({'image',
  'label'})}, e.g. 'train', 'test', 'validation'; num_classes: C; batch_size: the global
  evaluation batch; fixed: {name: (features (N, F), labels (N,))} scored instead."""
  model: Any
  mesh: Any
  num_classes: int
  batch_size: int
  splits: dict = dataclasses.field(default_factory=dict)
  fixed: Optional[dict] = None
  _features: dict = dataclasses.field(default_factory=dict)
  _outputs: dict = dataclasses.field(default_factory=dict)
  _memo: dict = dataclasses.field(default_factory=dict)

  def features(self, state, split):
    """(features (N, F) float32 numpy, labels (N,)) of the named `split` under `state`.

    Cached for the state's step, so several instances extract each split once.
    """
    if self.fixed is not None:
      return self.fixed[split]
    step = int(jax.device_get(state.step))
    key = (split, step)
    if key not in self._features:
      self._features = {k: v for k, v in self._features.items() if k[1] == step}
      self._features[key] = extract_features(self.model, state.variables, self.splits[split],
                                             self.batch_size, self.mesh)
    return self._features[key]

  def outputs(self, state, split, head='head'):
    """(features (N, F), logits (N, C) of `head`, labels (N,)) numpy of the named `split`
    under `state`, cached for the state's step (`tlu.evaluate.outputs`)."""
    from tlu.evaluate.outputs import extract_outputs  # pylint: disable=import-outside-toplevel
    step = int(jax.device_get(state.step))
    key = (split, head, step)
    if key not in self._outputs:
      self._outputs = {k: v for k, v in self._outputs.items() if k[2] == step}
      self._outputs[key] = extract_outputs(self.model, state.variables, self.splits[split],
                                           self.batch_size, self.mesh, head,
                                           num_classes=self.num_classes)
    return self._outputs[key]

  def memo(self, state, key, compute):
    """compute() once per (key, step): a result several instances share at one step (e.g.
    the importance weights of DEV and DEVN)."""
    step = int(jax.device_get(state.step))
    if (key, step) not in self._memo:
      self._memo = {k: v for k, v in self._memo.items() if k[1] == step}
      self._memo[(key, step)] = compute()
    return self._memo[(key, step)]
