-- One row per order: what was paid, late payments included.
select
    order_id,
    count(*) as payment_count,
    sum(case when payment_status = 'succeeded' then amount else 0 end) as amount_paid,
    min(paid_at) as first_paid_at,
    max(paid_at) as last_paid_at,
    sum(case when amount < 0 then 1 else 0 end) as negative_payment_count
from {{ ref('stg_shop__payments') }}
group by order_id
