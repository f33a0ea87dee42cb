"""Training: the entry point (`train`), the Trainer as configured here (`trainer`), its
batches (`collators`), checkpoints and resume, Accelerate ranks, loss history and curve."""
