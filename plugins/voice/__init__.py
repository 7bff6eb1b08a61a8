"""The voice channel plugin."""
