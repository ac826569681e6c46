"""A stand-in for a fine-tuning command: prints progress like a trainer, sleeps between epochs.

usage: fake_train.py EPOCHS SECONDS_PER_EPOCH PID_FILE [--fail]
Writes its pid to PID_FILE first; prints "epoch N/EPOCHS loss=..." per epoch; exits 0 (or 3 with --fail)."""

import os
import sys
import time

epochs, pause, pid_file = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
with open(pid_file, "w") as f:
    f.write(str(os.getpid()))
print(f"dataset: {os.environ.get('FAKE_DATASET', '?')}", flush=True)
for n in range(1, epochs + 1):
    time.sleep(pause)
    print(f"epoch {n}/{epochs} loss={1.0 / n:.3f}", flush=True)
if "--fail" in sys.argv:
    print("error: out of GPU memory", flush=True)
    sys.exit(3)
print("done", flush=True)
