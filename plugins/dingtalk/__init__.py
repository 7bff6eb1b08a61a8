"""The dingtalk channel plugin."""
