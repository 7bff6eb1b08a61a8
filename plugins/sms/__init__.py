"""The sms channel plugin."""
