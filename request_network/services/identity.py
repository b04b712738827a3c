"""Profile types as replicated from the response network (the authority).

Replicated users and profile types arrive through `request_network.services.arrivals`.
"""

from __future__ import annotations

from request_network.models import ProfileType
from shared.query_spec import ProfileRules


def profile_rules(profile: ProfileType) -> ProfileRules:
    return ProfileRules(
        name=profile.name,
        index=profile.index,
        fields=profile.fields,
        return_fields=profile.return_fields,
        max_size=profile.max_size,
    )
