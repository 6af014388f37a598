with customers as (
    select * from {{ ref('stg_shop__customers') }}
),

orders as (
    select * from {{ ref('orders') }}
),

customer_orders as (
    select
        customer_id,
        count(*) as order_count,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        sum(case when status <> 'returned' then order_amount else 0 end) as lifetime_revenue
    from orders
    group by customer_id
)

select
    customers.customer_id,
    customers.first_name,
    customers.last_name,
    customers.email,
    customers.country_code,
    customers.created_at as customer_since,
    coalesce(customer_orders.order_count, 0) as order_count,
    customer_orders.first_order_date,
    customer_orders.last_order_date,
    coalesce(customer_orders.lifetime_revenue, 0) as lifetime_revenue
from customers
left join customer_orders on customer_orders.customer_id = customers.customer_id
