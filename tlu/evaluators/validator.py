"""An unsupervised validator's score of the checkpoint (`tlu.adapt.validators`): higher is better.

    evals = {'snd': {'type': 'validator', 'name': 'snd', 'prefix': 'snd_'}}   # -> 'snd_score'

`name` picks the validator; `splits` default to what it reads (`validators.SPLITS`:
'target_train', the unlabelled target training images, whose labels are never read;
'source_validation' and 'source_train', labelled source splits, for source_accuracy, dev
and devn). The model's features and `head`'s logits of each split are extracted once per
step for all instances (`Context.outputs`).
"""

from tlu import checks
from tlu.adapt import validators
from tlu.evaluators import EVALUATORS, Evaluator

ERRORS = ('cross_entropy', 'zero_one')


@EVALUATORS.register('validator')
class Validator(Evaluator):
  """-> {'score'} (prefix 'validator_'); options: name (one of validators.NAMES), head,
  temperature (snd), max_iter / normalize (class_ami's k-means), error / max_examples (dev,
  devn), seed (class_ami, dev, devn)."""
  prefix, splits, metrics = 'validator_', (), ('score',)
  ranges = {'temperature': checks.POSITIVE, 'max_iter': checks.POSITIVE_INT,
            'max_examples': checks.Range(lambda v: v >= 2, 'an integer >= 2', 'integer')}
  needs_model = True

  def __init__(self, ctx, splits, name='', head='head', temperature=0.05, max_iter=20,
               normalize=True, error='cross_entropy', max_examples=3000, seed=0):
    if name not in validators.NAMES:
      raise ValueError(f'name={name!r} must be one of {", ".join(validators.NAMES)}')
    needed = validators.SPLITS[name]
    splits = tuple(splits) or needed
    if len(splits) != len(needed):
      raise ValueError(f'splits={splits}: validator {name} reads {len(needed)} '
                       f'({", ".join(needed)})')
    super().__init__(ctx, splits)
    if error not in ERRORS:
      raise ValueError(f'error={error!r} must be one of {", ".join(ERRORS)}')
    self.name, self.head = name, head
    self.options = dict(temperature=temperature, max_iter=max_iter, normalize=bool(normalize),
                        error=error, max_examples=max_examples, seed=seed)

  def heads(self):
    return (self.head,)

  def __call__(self, state):
    outs = [self.ctx.outputs(state, s, self.head) for s in self.split_names]
    weights = None
    if self.name in ('dev', 'devn'):   # shared by DEV and DEVN at one step
      (tf, _, _), (vf, _, _), (sf, _, _) = outs
      key = ('importance_weights', self.split_names, self.head, self.options['seed'],
             self.options['max_examples'])
      weights = self.ctx.memo(state, key, lambda: validators.importance_weights(
          sf, tf, vf, seed=self.options['seed'], max_examples=self.options['max_examples']))
    return {'score': score(self.name, outs, weights, **self.options)}


def score(name, outs, weights=None, *, temperature, max_iter, normalize, error, max_examples,
          seed):
  """The validator `name` on outs = [(features, logits, labels) of each of its splits];
  dev / devn: `weights`, the importance weights of the source validation rows."""
  del max_examples   # read by the importance weights
  if name == 'source_accuracy':
    (_, logits, labels), = outs
    return validators.source_accuracy(logits, labels)
  if name in ('dev', 'devn'):
    _, (_, vl, vy), _ = outs
    return validators.dev(weights, vl, vy, normalize=name == 'devn', error=error)
  (features, logits, _), = outs   # target train: its labels are not read
  if name == 'class_ami':
    return validators.class_ami(features, logits, seed=seed, max_iter=max_iter,
                                normalize=normalize)
  if name == 'snd':
    return validators.snd(logits, temperature)
  return {'entropy': validators.entropy, 'im': validators.information_maximization,
          'bnm': validators.bnm}[name](logits)
