"""Command-line entry points: the only package that imports Hydra.

`megathink <command> [overrides]` composes `hydra_conf/<command>.yaml` against the typed
`RunConfig` schema (so an unknown key or a typo fails), validates it into dataclasses, and
hands those to the library.
"""
