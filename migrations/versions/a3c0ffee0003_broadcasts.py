"""broadcasts

Revision ID: a3c0ffee0003
Revises: a2c0ffee0002
Create Date: 2026-11-23 06:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'a3c0ffee0003'
down_revision = 'a2c0ffee0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    op.create_table('broadcasts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('message_type', sa.String(length=14), nullable=False),
    sa.Column('from_email', sa.String(length=320), nullable=True),
    sa.Column('from_name', sa.String(length=200), nullable=True),
    sa.Column('reply_to', JSON, nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('template_id', sa.String(length=32), nullable=True),
    sa.Column('template_version', sa.Integer(), nullable=True),
    sa.Column('audience_list_id', sa.String(length=32), nullable=True),
    sa.Column('inline_recipients', sa.Integer(), nullable=False),
    sa.Column('track_opens', sa.Boolean(), nullable=False),
    sa.Column('track_clicks', sa.Boolean(), nullable=False),
    sa.Column('tags', JSON, nullable=False),
    sa.Column('metadata', JSON, nullable=False),
    sa.Column('domain_id', sa.String(length=32), nullable=True),
    sa.Column('scheduled_at', sa.DateTime(), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('fanout_cursor', sa.String(length=32), nullable=True),
    sa.Column('fanout_frozen_at', sa.DateTime(), nullable=True),
    sa.Column('fanout_heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('total_recipients', sa.Integer(), nullable=False),
    sa.Column('queued_count', sa.Integer(), nullable=False),
    sa.Column('suppressed_count', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('canceled_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('organization_id', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts'))
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_broadcasts_mode'), ['mode'], unique=False)
        batch_op.create_index(batch_op.f('ix_broadcasts_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('ix_broadcasts_page', ['organization_id', 'mode', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_broadcasts_status', ['status', 'scheduled_at'], unique=False)

    op.create_table('broadcast_recipients',
    sa.Column('broadcast_id', sa.String(length=32), nullable=False),
    sa.Column('contact_id', sa.String(length=32), nullable=False),
    sa.Column('data', JSON, nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('organization_id', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('broadcast_id', 'contact_id', name=op.f('pk_broadcast_recipients'))
    )
    with op.batch_alter_table('broadcast_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_broadcast_recipients_mode'), ['mode'], unique=False)
        batch_op.create_index(batch_op.f('ix_broadcast_recipients_organization_id'), ['organization_id'],
                              unique=False)

    # At most one message per recipient of a broadcast: fan-out inserts with ON CONFLICT DO NOTHING.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ux_messages_broadcast_contact', ['broadcast_id', 'contact_id'], unique=True,
                              postgresql_where=sa.text('broadcast_id IS NOT NULL'),
                              sqlite_where=sa.text('broadcast_id IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ux_messages_broadcast_contact')
    with op.batch_alter_table('broadcast_recipients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broadcast_recipients_organization_id'))
        batch_op.drop_index(batch_op.f('ix_broadcast_recipients_mode'))
    op.drop_table('broadcast_recipients')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_index('ix_broadcasts_status')
        batch_op.drop_index('ix_broadcasts_page')
        batch_op.drop_index(batch_op.f('ix_broadcasts_organization_id'))
        batch_op.drop_index(batch_op.f('ix_broadcasts_mode'))
    op.drop_table('broadcasts')
