"""Built-in channel plugins, each registered through the ``msggate.plugins`` entry-point group."""
