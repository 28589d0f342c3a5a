"""The ``acr-pose`` command line: ``main.py`` dispatches to one module per subcommand (see its docstring)."""
