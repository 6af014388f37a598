{{
    config(
        materialized='incremental',
        unique_key='order_item_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}

-- Incremental on the dlt load: only lines that a newer load wrote are processed.
with items as (
    select * from {{ ref('stg_shop__order_items') }}
    {% if is_incremental() %}
    where cast(_dlt_load_id as double precision) > (
        select coalesce(max(cast(_dlt_load_id as double precision)), 0) from {{ this }}
    )
    {% endif %}
),

products as (
    select * from {{ ref('stg_shop__products') }}
),

orders as (
    select order_id, order_date from {{ ref('stg_shop__orders') }}
)

select
    items.order_item_id,
    items.order_id,
    orders.order_date,
    items.product_id,
    products.product_name,
    products.category,
    items.quantity,
    items.unit_price,
    items.line_amount,
    items._dlt_load_id
from items
left join products on products.product_id = items.product_id
left join orders on orders.order_id = items.order_id
