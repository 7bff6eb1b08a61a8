"""Console screens, one module each; importing this package registers their routes."""

from admin.views import (  # noqa: F401
    access,
    accounts,
    apikeys,
    auth,
    home,
    messages,
    outbound,
    profile,
    relay_users,
    sandbox,
    send,
    users,
)
