"""Command-line entry points: run them as `python -m scripts.<name>` from the repo root."""
