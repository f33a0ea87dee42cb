"""Serving a model version over HTTP: the request checks, the model the deployment loads once,
and deploying / stopping it with ZenML's deployer."""
