"""The ``cocoon`` command: parses, calls the library, renders. One file per verb group."""
