"""event-count rollup for segments: event_windows and event_window_counts

Revision ID: a6c0ffee0006
Revises: a5c0ffee0005
Create Date: 2026-12-02 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a6c0ffee0006'
down_revision = 'a5c0ffee0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('event_windows',
    sa.Column('organization_id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.DateTime(), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('organization_id', 'mode', 'type', 'days', name=op.f('pk_event_windows'))
    )
    op.create_table('event_window_counts',
    sa.Column('organization_id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.String(length=32), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.PrimaryKeyConstraint('organization_id', 'mode', 'type', 'days', 'contact_id',
                            name=op.f('pk_event_window_counts'))
    )


def downgrade():
    op.drop_table('event_window_counts')
    op.drop_table('event_windows')
