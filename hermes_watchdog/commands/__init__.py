"""One module per CLI command; cli.py only declares the options and hands over."""
