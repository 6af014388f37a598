with source as (
    select * from {{ source('raw_shop', 'customers') }}
    where {{ completed_loads(source('raw_shop', 'customers')) }}
),

renamed as (
    select
        cast(id as bigint) as customer_id,
        first_name,
        last_name,
        lower(trim(email)) as email,
        country as country_code,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        _dlt_load_id
    from source
)

select * from renamed
