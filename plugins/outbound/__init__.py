"""The outbound channel plugin."""
