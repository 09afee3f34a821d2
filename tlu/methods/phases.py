"""Update phases: several optimizer updates per train step, each over part of the parameters.

Most methods take one update of every parameter per step (`Method.phases = ()`). A method
whose objective is a sequence of min and max games over different parameter subsets
declares them in order (`Method.phases`, or `Method.update_phases(config)` when they
depend on the config), e.g. MCD (Saito et al. 2018, section 3.2; tlu/methods/mcd.py):

  (Phase('source', ('backbone', 'head', 'head2'), 'source_loss'),
   Phase('maximise', ('head', 'head2'), 'maximise_loss'),
   Phase('minimise', ('backbone',), 'minimise_loss'), ...)   # num_k generator updates

Within one step (`tlu.train.step`) phase i differentiates its loss (a method attribute
`loss(params, model_state, batch, rng) -> LossOutput`, rng folded with i) with respect to
its subtrees only, at the parameters and BatchNorm statistics the phases before it left,
and updates them with its own optimizer state: `state.opt_state[phase.name]` is the run's
optimizer (schedule, freezing) initialised on those subtrees alone, so a parameter outside
a phase neither moves in it nor appears in its state. Checkpointed with the rest: resume
is exact.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Phase:
  """name: the phase's key in opt_state and its metrics' prefix; subtrees: top-level
  parameter subtrees it updates ('backbone', 'head', ...); loss: the method's attribute
  that gives its `LossOutput`."""
  name: str
  subtrees: tuple
  loss: str = 'loss_fn'


def select(params, subtrees):
  """The top-level subtrees `subtrees` of params ({name: subtree})."""
  return {k: params[k] for k in subtrees}


def check(phases, param_names):
  """ValueError for a phase over no or unknown subtrees, or two phases of one name."""
  names = [p.name for p in phases]
  if len(set(names)) != len(names):
    raise ValueError(f'update phases {names}: names must differ')
  for p in phases:
    unknown = sorted(set(p.subtrees) - set(param_names))
    if not p.subtrees or unknown:
      raise ValueError(f'update phase {p.name!r}: subtrees {tuple(p.subtrees)} must be '
                       f'parameter subtrees of the model ({", ".join(sorted(param_names))})')


class PhaseOptimizers:
  """One optax optimizer per phase, over its subtrees: `init(params)` -> {name: state}.

  make_tx(params of the phase's subtrees) -> optax.GradientTransformation.
  """

  def __init__(self, phases, make_tx, params):
    check(phases, params)
    self.phases = tuple(phases)
    self.txs = {p.name: make_tx(select(params, p.subtrees)) for p in phases}

  def init(self, params):
    return {p.name: self.txs[p.name].init(select(params, p.subtrees)) for p in self.phases}
