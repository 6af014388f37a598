-- Revenue per day must add up to the order amounts: a join fan-out would break this.
with by_day as (
    select sum(gross_revenue) as total from {{ ref('daily_revenue') }}
),

by_order as (
    select sum(order_amount) as total from {{ ref('orders') }}
)

select by_day.total as daily_total, by_order.total as order_total
from by_day cross join by_order
where abs(coalesce(by_day.total, 0) - coalesce(by_order.total, 0)) > 0.01
