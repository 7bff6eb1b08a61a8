"""msggate-webhook: a msggate channel that POSTs each delivery as signed JSON to a URL."""

__version__ = "0.1.0"
