with source as (
    select * from {{ source('raw_marketing', 'ad_spend') }}
    where {{ completed_loads(source('raw_marketing', 'ad_spend')) }}
),

renamed as (
    select
        cast(spend_date as date) as spend_date,
        channel,
        campaign_id,
        campaign_name,
        cast(impressions as bigint) as impressions,
        cast(clicks as bigint) as clicks,
        cast(spend as numeric(14, 2)) as spend,
        _dlt_load_id
    from source
)

select * from renamed
