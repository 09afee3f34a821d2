"""Entry points: `python -m experiments.<stage>`. Wiring only; algorithms live in `tlu/`.

SIGTERM and Ctrl-C are caught from the moment this package is imported, before jax
loads (tlu/train/stop.py): the training loop saves a checkpoint (at step 0 if need be)
and the stage exits with 143 (SIGTERM) or 130 (Ctrl-C); a second Ctrl-C stops at once.
"""

from tlu.train import stop

stop.install()
