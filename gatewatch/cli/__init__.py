"""The ``gatewatch`` command: argument parsing in ``main``, one module per group of commands."""
