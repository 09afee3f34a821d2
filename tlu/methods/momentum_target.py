"""The momentum (EMA) target network of BYOL, MoCo v3 and DINO: one definition.

solo-learn's `momentum_pairs` idea: a method names the online subtrees its target follows
(BYOL and MoCo v3: backbone and projector, not the predictor; DINO: all of them) and the
house keeps the rest. The target lives in the method state (`extra['target']`:
{'params', 'batch_stats'} of those subtrees, checkpointed), starts as a copy of the online
network, runs in the method's training mode (`Method.mode`, so the frozen-BatchNorm
patterns of the task reach the target's forward pass like every other), and after every
step follows the online network, xi <- m xi + (1 - m) theta, with m on BYOL's cosine
schedule from the method's `config.momentum` to 1 (`tlu.unsupervised.momentum`).
"""

import jax

from tlu.unsupervised.momentum import cosine_momentum, ema_update


class MomentumTarget:
  """subtrees: the top-level parameter subtrees the target copies and follows (None: all)."""

  def __init__(self, subtrees=None):
    self.subtrees = None if subtrees is None else tuple(subtrees)

  def pick(self, tree):
    if self.subtrees is None:
      return tree
    return {k: v for k, v in tree.items() if k in self.subtrees}

  def init(self, variables):
    """The target at the start: a copy of the online subtrees and their BatchNorm statistics."""
    return {'params': self.pick(variables['params']),
            'batch_stats': self.pick(variables.get('batch_stats', {}))}

  def forward(self, method, target, images, heads):
    """The target's training-mode pass: (stop-gradient outputs {'features', <head>...},
    the target with its updated BatchNorm statistics)."""
    out, updates = method.model.apply(target, images, train=method.mode, heads=heads,
                                      mutable=['batch_stats'])
    return (jax.lax.stop_gradient(out),
            {**target, 'batch_stats': updates.get('batch_stats', {})})

  def after_update(self, method, state):
    """`state` with `extra['target']['params']` moved towards the updated online ones
    (the momentum of the step just taken)."""
    m = cosine_momentum(state.step, method.facts.num_steps, method.config.momentum)
    target = state.extra['target']
    params = ema_update(target['params'], self.pick(state.params), m)
    return state.replace(extra={**state.extra, 'target': {**target, 'params': params}})
