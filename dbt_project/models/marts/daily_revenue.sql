select
    order_date as revenue_date,
    count(*) as order_count,
    sum(units) as units,
    sum(order_amount) as gross_revenue,
    sum(case when status = 'returned' then order_amount else 0 end) as returned_revenue,
    sum(case when status <> 'returned' then order_amount else 0 end) as net_revenue,
    sum(amount_paid) as amount_paid
from {{ ref('orders') }}
group by order_date
