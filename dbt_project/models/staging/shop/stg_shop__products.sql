with source as (
    select * from {{ source('raw_shop', 'products') }}
    where {{ completed_loads(source('raw_shop', 'products')) }}
),

renamed as (
    select
        cast(id as bigint) as product_id,
        sku,
        name as product_name,
        category,
        cast(price as numeric(12, 2)) as list_price,
        cast(updated_at as timestamp) as updated_at
    from source
)

select * from renamed
