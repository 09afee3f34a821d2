"""Entry points: `python -m experiments.<stage>`. Wiring only; algorithms live in `tlu/`.

SIGTERM (TPU preemption, `kill`) is caught from the moment this package is imported,
before jax loads: the flag is polled by the training loop, which then saves a
checkpoint (at step 0 if need be) and the stage exits with 143.
"""

import signal
import threading

PREEMPTED = threading.Event()


def _on_sigterm(signum, frame):
  del signum, frame
  PREEMPTED.set()


signal.signal(signal.SIGTERM, _on_sigterm)
