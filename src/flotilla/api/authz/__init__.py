"""Authorization of API requests: RBAC roles and the agent restriction.

`Authorizer.authorize` is called from one place, `flotilla.api.gate.admit`, for every
resource request; see `authorizer` for the order of the checks.
"""

from flotilla.api.authz.attributes import Attributes
from flotilla.api.authz.authorizer import Authorizer, forbidden
from flotilla.api.authz.builtin import BUILTIN_ROLES

__all__ = ["BUILTIN_ROLES", "Attributes", "Authorizer", "forbidden"]
