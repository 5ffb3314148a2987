"""Import every model so the metadata (and Alembic autogenerate) sees every table."""
from .accounts.models import Membership, Organization, User  # noqa: F401
from .api.models import IdempotencyRecord, RequestLog  # noqa: F401
from .apikeys.models import ApiKey  # noqa: F401
from .contacts.models import Contact  # noqa: F401
from .system.models import WorkerHeartbeat  # noqa: F401
