"""tracking: links, opens, clicks, preferences

Revision ID: a4c0ffee0004
Revises: a3c0ffee0003
Create Date: 2026-11-23 06:00:00

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'a4c0ffee0004'
down_revision = 'a3c0ffee0003'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
