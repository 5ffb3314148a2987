"""Import every model so the metadata (and Alembic autogenerate) sees every table."""
from .accounts.models import Membership, Organization, User  # noqa: F401
from .api.models import IdempotencyRecord, RequestLog  # noqa: F401
from .apikeys.models import ApiKey  # noqa: F401
from .contacts.models import Contact  # noqa: F401
from .system.models import WorkerHeartbeat  # noqa: F401
from .domains.models import Domain  # noqa: F401
from .events.models import Event  # noqa: F401
from .messages.models import DeliveryAttempt, Message, MessageAttachment, MessageRecipient  # noqa: F401
from .suppressions.models import Suppression  # noqa: F401
from .templates.models import Template, TemplateVersion  # noqa: F401
from .webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint  # noqa: F401
from .lists.models import ContactList, ListMember  # noqa: F401
from .broadcasts.models import Broadcast, BroadcastRecipient  # noqa: F401
from .bgjobs.models import Job  # noqa: F401
from .segments.models import EventWindow, EventWindowCount  # noqa: F401
