"""Shared test fixtures (tiny models, tokenizers, scripted servers). Named `megathink_fixtures`, not
`fixtures`: pytest.ini puts tests/ on sys.path, and PyPI has a package called `fixtures`."""
