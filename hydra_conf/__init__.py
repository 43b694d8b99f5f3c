"""Hydra config tree of megathink (installed as the `megathink.hydra_conf` package)."""
