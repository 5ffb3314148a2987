"""jobs.files_deleted_at: job files are deleted JOB_FILE_RETENTION_DAYS after the job ends

Revision ID: a8c0ffee0008
Revises: a7c0ffee0007
Create Date: 2026-12-02 19:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a8c0ffee0008'
down_revision = 'a7c0ffee0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('files_deleted_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('files_deleted_at')
