"""The HTML-to-text helper now lives in the core (``gateway.html_text``), shared with the relay."""

from gateway.html_text import html_to_text

__all__ = ["html_to_text"]
