"""inventory sync: passes and per-SKU state

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inventory_passes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('read', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inventory_passes', schema=None) as batch_op:
        batch_op.create_index('ix_inventory_passes_store_started', ['store', 'started_at'], unique=False)

    op.create_table('inventory_skus',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=128), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('seller_sku', sa.String(length=128), nullable=False),
    sa.Column('fulfillable', sa.Integer(), nullable=True),
    sa.Column('reserved', sa.Integer(), nullable=False),
    sa.Column('inbound', sa.Integer(), nullable=False),
    sa.Column('not_sent', sa.Integer(), nullable=False),
    sa.Column('buffer', sa.Integer(), nullable=False),
    sa.Column('store_qty', sa.Integer(), nullable=True),
    sa.Column('target', sa.Integer(), nullable=True),
    sa.Column('written_qty', sa.Integer(), nullable=True),
    sa.Column('written_at', sa.DateTime(), nullable=True),
    sa.Column('checked_at', sa.DateTime(), nullable=True),
    sa.Column('problem', sa.Text(), nullable=False),
    sa.Column('zero_since', sa.DateTime(), nullable=True),
    sa.Column('refresh_after', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('store', 'sku', name='uq_inventory_skus_store_sku')
    )
    with op.batch_alter_table('inventory_skus', schema=None) as batch_op:
        batch_op.create_index('ix_inventory_skus_account_seller', ['account', 'seller_sku'], unique=False)
        batch_op.create_index(batch_op.f('ix_inventory_skus_refresh_after'), ['refresh_after'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inventory_skus', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inventory_skus_refresh_after'))
        batch_op.drop_index('ix_inventory_skus_account_seller')
    op.drop_table('inventory_skus')
    with op.batch_alter_table('inventory_passes', schema=None) as batch_op:
        batch_op.drop_index('ix_inventory_passes_store_started')
    op.drop_table('inventory_passes')
