"""The wecom channel plugin."""
