"""The folder `kernel-lock run` puts first on `PYTHONPATH`: its `sitecustomize` turns enforcement on."""
