"""message_recipients: find a tenant's messages by recipient address; no organization_id index of its own

Revision ID: a7c0ffee0007
Revises: a6c0ffee0006
Create Date: 2026-12-02 19:40:00.000000

`GET /messages?to=` and contact erasure look messages up by recipient address; without an index that was a
scan of the tenant's recipients.  The single-column organization_id index (written for every recipient, read
by nothing on its own) gives way to it, so a send maintains as many indexes as before.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a7c0ffee0007'
down_revision = 'a6c0ffee0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('message_recipients', schema=None) as batch_op:
        batch_op.create_index('ix_message_recipients_address', ['organization_id', 'mode', 'address'], unique=False)
        batch_op.drop_index(batch_op.f('ix_message_recipients_organization_id'))


def downgrade():
    with op.batch_alter_table('message_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_recipients_organization_id'), ['organization_id'], unique=False)
        batch_op.drop_index('ix_message_recipients_address')
