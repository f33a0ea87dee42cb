"""The project's library. Importing any of it first drops third-party log lines that mislead
users (`utils.quiet_logs`), so run.py, the steps, Accelerate ranks and the served pipeline
alike print only what applies to them."""

from utils import quiet_logs

quiet_logs.install()
