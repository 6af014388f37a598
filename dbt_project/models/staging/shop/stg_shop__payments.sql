with source as (
    select * from {{ source('raw_shop', 'payments') }}
    where {{ completed_loads(source('raw_shop', 'payments')) }}
),

renamed as (
    select
        cast(id as bigint) as payment_id,
        cast(order_id as bigint) as order_id,
        method as payment_method,
        cast(amount as numeric(14, 2)) as amount,
        status as payment_status,
        cast(paid_at as timestamp) as paid_at,
        cast(updated_at as timestamp) as updated_at,
        _dlt_load_id
    from source
)

select * from renamed
