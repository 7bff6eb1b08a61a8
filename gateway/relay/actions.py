"""The seam for ``<action>@action.<relay-domain>``: tiered push actions, once they exist.

The relay asks ``RelayServices.actions`` (an :class:`ActionTrigger`, None until the tiered
actions feature provides one) whether an action may be triggered when the address is given at
RCPT, and triggers it with the subject and body as variables once the message is in. Until then
such an address is refused with 550 5.3.0, so no mail is accepted that nothing would act on.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)

NOT_AVAILABLE = "550 5.3.0 {address}: tiered actions are not available yet"


class ActionTrigger(Protocol):
    """What the tiered actions feature will plug in."""

    async def check(self, name: str) -> str | None:
        """Why action ``name`` cannot be triggered (unknown, disabled), or None if it can."""
        ...

    async def trigger(self, name: str, variables: dict[str, Any], ingress: dict[str, Any]) -> str:
        """Start the action durably (committed before returning); return its run's id."""
        ...


async def refusal(actions: ActionTrigger | None, name: str, address: str) -> str | None:
    """The SMTP reply refusing ``address`` at RCPT, or None if the action may be triggered."""
    if actions is None:
        return NOT_AVAILABLE.format(address=address)
    problem = await actions.check(name)
    return f"550 5.1.1 {address}: {problem}" if problem else None
