"""The ``detopt`` command line (typer): parse the options, call the library, print tables.

The entry point is :data:`detopt.cli.main.app`; nothing is imported here so that the
command starts fast.
"""
