"""The web console: an aiohttp + Jinja2 sub-application at /admin, server-rendered.

``admin.app.install(app, settings)`` mounts it on the gateway; see :mod:`admin.app`.
"""
