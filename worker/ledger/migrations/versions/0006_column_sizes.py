"""column sizes fit the platforms' limits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00.000000

Store text as long as the platforms allow must fit (PostgreSQL enforces VARCHAR lengths; SQLite
does not): SKUs become TEXT (Shopify allows 255 characters, WooCommerce more), the order number
takes 255 (the store mappings refuse longer ones), a provider's request id 255.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# (table, column, old type, new type)
CHANGES = [
    ('orders', 'number', sa.String(length=64), sa.String(length=255)),
    ('order_lines', 'sku', sa.String(length=128), sa.Text()),
    ('shipment_lines', 'sku', sa.String(length=128), sa.Text()),
    ('shipment_lines', 'seller_sku', sa.String(length=128), sa.Text()),
    ('shipments', 'request_id', sa.String(length=128), sa.String(length=255)),
]


def upgrade() -> None:
    for table, column, old, new in CHANGES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=old, type_=new, existing_nullable=False)


def downgrade() -> None:
    # Values longer than the old sizes would not fit: shorten them first (PostgreSQL refuses).
    for table, column, old, new in reversed(CHANGES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=new, type_=old, existing_nullable=False,
                                  postgresql_using=f"left({column}, {old.length})")
