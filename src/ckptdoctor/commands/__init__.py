"""One module per CLI command: ``add_arguments(parser)`` (argparse) and ``run(args)``, whose docstring is the
command's help. Top-level imports stay light (the stdlib and ckptdoctor's own light modules only)."""
