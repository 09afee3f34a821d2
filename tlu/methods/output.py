"""What a method's `loss_fn` returns: one typed record instead of an untyped aux dict."""

from typing import Any

import flax.struct


@flax.struct.dataclass
class LossOutput:
  """The result of `Method.loss_fn(params, model_state, batch, rng)`.

  loss: () float, what the step differentiates (before the house adds the online probe).
  batch_stats: the updated BatchNorm statistics of every forward pass in training mode
    (the same tree as `model_state['batch_stats']`; `{}` for a model without BatchNorm).
    Required: a method that runs BatchNorm in training mode and returns no statistics is
    an error, not a silent keep of the old ones.
  metrics: {name: () scalar} to log (the house adds 'loss' and 'grad_norm').
  outputs: {name: array} the forward pass's outputs that the house or a subclass reuses
    ('features' (V * N, F) for the online probe and the collapse statistic, 'logits').
  extra: the new method state (same tree as `model_state['extra']`), or None: unchanged.
  """
  loss: Any
  batch_stats: Any
  metrics: Any = flax.struct.field(default_factory=dict)
  outputs: Any = flax.struct.field(default_factory=dict)
  extra: Any = None
