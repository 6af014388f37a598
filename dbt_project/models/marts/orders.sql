with orders as (
    select * from {{ ref('stg_shop__orders') }}
),

items as (
    select * from {{ ref('int_orders__items_summed') }}
),

payments as (
    select * from {{ ref('int_payments__summed') }}
),

customers as (
    select customer_id from {{ ref('stg_shop__customers') }}
)

select
    orders.order_id,
    orders.customer_id,
    customers.customer_id is not null as is_known_customer,
    orders.order_date,
    orders.ordered_at,
    orders.status,
    orders.channel,
    coalesce(items.item_count, 0) as item_count,
    coalesce(items.units, 0) as units,
    coalesce(items.order_amount, 0) as order_amount,
    coalesce(payments.amount_paid, 0) as amount_paid,
    coalesce(payments.amount_paid, 0) >= coalesce(items.order_amount, 0) - 0.01 as is_paid,
    payments.last_paid_at as paid_at,
    coalesce(payments.negative_payment_count, 0) > 0 as has_negative_payment,
    orders.updated_at
from orders
left join items on items.order_id = orders.order_id
left join payments on payments.order_id = orders.order_id
left join customers on customers.customer_id = orders.customer_id
