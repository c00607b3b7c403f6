"""Training scripts: `python -m train.<task> --help`."""
