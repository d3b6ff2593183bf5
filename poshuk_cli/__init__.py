"""The ``poshuk`` command line, the top layer: it composes the commands of the core and both apps.

``poshuk_cli.main`` builds the parser from ``poshuk.commands.Command`` values: its own
(``model install``, ``search``, ``settings``), the indexer's and the service's. Nothing
imports this package; it may import everything below it (the import-linter contracts in
pyproject.toml say so).
"""
