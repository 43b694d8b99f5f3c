"""Hydra config tree of megathink (installed as the `megathink.hydra_conf` package).

Never a top-level `hydra_conf`: imported under that bare name (the repository root on
sys.path), the name goes to an installed package of that name or fails (megathink.shadowed_imports).
"""

if __name__ != "megathink.hydra_conf":
    from megathink.shadowed_imports import hand_over_to_installed

    hand_over_to_installed(__name__, __file__)
