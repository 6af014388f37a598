{{ config(severity='warn') }}
-- An order paid well beyond its amount means a double payment: warn so that finance can refund it.
select order_id, order_amount, amount_paid
from {{ ref('orders') }}
where amount_paid > order_amount + 0.01
