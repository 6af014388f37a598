with source as (
    select * from {{ source('raw_shop', 'order_items') }}
    where {{ completed_loads(source('raw_shop', 'order_items')) }}
),

renamed as (
    select
        cast(id as bigint) as order_item_id,
        cast(order_id as bigint) as order_id,
        cast(product_id as bigint) as product_id,
        cast(quantity as integer) as quantity,
        cast(unit_price as numeric(12, 2)) as unit_price,
        cast(quantity * unit_price as numeric(14, 2)) as line_amount,
        cast(updated_at as timestamp) as updated_at,
        _dlt_load_id
    from source
)

select * from renamed
