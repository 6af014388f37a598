-- One row per order: what was ordered.
select
    order_id,
    count(*) as item_count,
    sum(quantity) as units,
    sum(line_amount) as order_amount
from {{ ref('stg_shop__order_items') }}
group by order_id
