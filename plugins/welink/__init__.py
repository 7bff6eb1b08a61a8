"""The welink channel plugin."""
