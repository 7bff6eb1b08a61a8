"""The web console (aiohttp + Jinja2); built in a later issue."""
