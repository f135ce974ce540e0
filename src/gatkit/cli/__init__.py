"""Command-line interface (``gatkit COMMAND``)."""
