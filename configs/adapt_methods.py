"""Task blocks of the adaptation methods beyond DANN and SHOT, for any adaptation config.

`blocks(steps, batch_size)` -> {name: task ConfigDict}, one per method file in
tlu/methods/: an adaptation config (configs/digits_to_digits_m.py, mnist_to_mnist_m.py)
adds them with `c.update(adapt_methods.blocks(STEPS, BATCH_SIZE))` and runs one with
`--config.methods='("cdan",)'`. The model and seed come from the sweep (tlu/adapt/cells.py).

  cdan      CDAN+E (Long et al. 2018): discriminator on features x predictions, entropy weights
  cdan_bsp  CDAN+E + batch spectral penalization (Chen et al. 2019)
  dann_bsp  DANN + batch spectral penalization
  dan       DAN (Long et al. 2015): multi-kernel MMD of the features
  jan       JAN (Long et al. 2017): joint MMD of features and predictions
  mcc       MCC (Jin et al. 2020): minimum class confusion of the target predictions
  mdd       MDD (Zhang et al. 2019): margin disparity discrepancy, adversarial classifier
  afn       Stepwise AFN (Xu et al. 2019): feature norms enlarged by delta_r per step
  aad       AaD (Yang et al. 2022): source-free, from the source run (like SHOT)
  mcd       MCD (Saito et al. 2018): two classifiers' target discrepancy, max then min
            (three update phases a step, num_k = 4 generator updates: 6 passes a step)
  adda      ADDA (Tzeng et al. 2017): from the source run (like SHOT) on paired batches, a
            discriminator against the frozen source encoder, the classifier kept

Hyperparameters are the papers' / the Transfer-Learning-Library's (each method file
says which); the optimiser is the TLlib digit runs' SGD (lr 0.01, momentum 0.9) with
the house's cosine schedule; BatchNorm 'per_domain' as the house's DANN block (TLlib
passes both domains jointly for CDAN, JAN, MCC, MDD and DANN+BSP). Nothing here has
been tuned on a target split.
"""

import ml_collections

METHODS = ('cdan', 'cdan_bsp', 'dann_bsp', 'dan', 'jan', 'mcc', 'mdd', 'afn', 'aad', 'mcd',
           'adda')


def optimizer(name='adamw', lr=1e-3, weight_decay=1e-4, schedule='cosine', warmup_steps=0,
              momentum=0.9):
  """The optimizer block of an adaptation cell (tlu/train/optim.py)."""
  return ml_collections.ConfigDict(dict(
      name=name, lr=lr, weight_decay=weight_decay, schedule=schedule, warmup_steps=warmup_steps,
      momentum=momentum, grad_clip_norm=0.0))


def task(method, optimizer, batch_size, log_every, eval_every, checkpoint_every, steps=0,
         epochs=0, steps_per_epoch=0, freeze=(), augment=''):
  """A trained method's cell: the model and seed come from the sweep (tlu/adapt/cells.py)."""
  return ml_collections.ConfigDict(dict(
      method=method, optimizer=optimizer, batch_size=batch_size, steps=steps, epochs=epochs,
      steps_per_epoch=steps_per_epoch, freeze=freeze, augment=augment, log_every=log_every,
      eval_every=eval_every, checkpoint_every=checkpoint_every, keep_checkpoints=1))


def _task(method, steps, batch_size, lr, weight_decay=5e-4, freeze=()):
  every = max(steps // 4, 1)
  return task(method, optimizer('sgd', lr, weight_decay), batch_size,
              log_every=max(steps // 20, 1), eval_every=every, checkpoint_every=every,
              steps=steps, freeze=freeze)


def blocks(steps, batch_size, lr=0.01):
  """{method: task block}; paired methods read batch_size source + batch_size target images."""
  bn = 'per_domain'
  cdan = dict(name='cdan', domain_head=(1024, 1024, 1),   # TLlib's discriminator widths
              domain_weight=1.0, gamma=10.0,              # DANN's lambda schedule
              entropy=True, randomized_dim=0,             # CDAN+E, full multilinear map
              batch_norm=bn)
  bsp = dict(bsp_weight=1e-4, bsp_k=1)                    # the paper's and TLlib's digit runs
  dann = dict(name='dann', domain_head=(100, 1), domain_weight=1.0, gamma=10.0, batch_norm=bn)
  alphas = (0.125, 0.25, 0.5, 1.0, 2.0)                   # bandwidths 2^k x mean distance
  out = {
      'cdan': _task(cdan, steps, batch_size, lr, weight_decay=1e-3),
      'cdan_bsp': _task({**cdan, **bsp, 'name': 'cdan_bsp'}, steps, batch_size, lr,
                        weight_decay=1e-3),
      'dann_bsp': _task({**dann, **bsp, 'name': 'dann_bsp'}, steps, batch_size, lr),
      'dan': _task(dict(name='dan', domain_weight=1.0, kernel_alphas=alphas,
                        linear=True, logits=False, batch_norm=bn),   # TLlib's linear estimate
                   steps, batch_size, lr),
      'jan': _task(dict(name='jan', domain_weight=1.0, kernel_alphas=alphas,
                        softmax_sigma=0.92, linear=False, batch_norm=bn),
                   steps, batch_size, lr),
      'mcc': _task(dict(name='mcc', temperature=2.5, domain_weight=1.0, batch_norm=bn),
                   steps, batch_size, lr, weight_decay=1e-3),
      'mdd': _task(dict(name='mdd', margin=4.0, domain_weight=1.0, width=1024,
                        grl_max=0.1, gamma=10.0, batch_norm=bn),
                   steps, batch_size, lr),
      'afn': _task(dict(name='afn', domain_weight=0.05, delta=1.0,   # the paper's
                        entropy_weight=0.0, batch_norm=bn),
                   steps, batch_size, lr),
      # Source-free: starts from the source run; the classifier trains too (as the reference).
      'aad': _task(dict(name='aad', k=5, alpha=1.0, beta=5.0), steps, batch_size, lr),
      # TLlib's digit runs: trade-offs 0.3 / 0.03, num_k 4, heads 1024 wide, one joint pass.
      'mcd': _task(dict(name='mcd', width=1024, domain_weight=0.3, entropy_weight=0.03,
                        num_k=4, batch_norm='joint'), steps, batch_size, lr),
      # TLlib's: discriminator 1024 wide with BatchNorm, reversal rising to 2, weight decay
      # 1e-3; its schedule runs over 1000 iterations (gamma = steps / 1000), DANN's here.
      'adda': _task(dict(name='adda', domain_head=(1024, 1024, 1), objective='grl',
                         grl_max=2.0, gamma=10.0), steps, batch_size, lr, weight_decay=1e-3),
  }
  assert tuple(out) == METHODS
  return out
