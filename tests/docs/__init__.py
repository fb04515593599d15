"""What a newcomer reads and runs: the docs' code blocks and diagrams, the tutorial, the Makefile, `python -m`."""
