with source as (
    select * from {{ source('raw_shop', 'orders') }}
    where {{ completed_loads(source('raw_shop', 'orders')) }}
),

renamed as (
    select
        cast(id as bigint) as order_id,
        cast(customer_id as bigint) as customer_id,
        -- legacy clients send ' Placed ' and the like
        lower(trim(status)) as status,
        utm_source as channel,
        cast(ordered_at as timestamp) as ordered_at,
        cast(ordered_at as date) as order_date,
        cast(updated_at as timestamp) as updated_at,
        _dlt_load_id
    from source
)

select * from renamed
