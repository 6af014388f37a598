with spend as (
    select
        spend_date,
        channel,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(spend) as spend
    from {{ ref('stg_marketing__ad_spend') }}
    group by spend_date, channel
),

revenue as (
    select
        order_date,
        channel,
        count(*) as order_count,
        sum(case when status <> 'returned' then order_amount else 0 end) as net_revenue
    from {{ ref('orders') }}
    group by order_date, channel
),

joined as (
    select
        coalesce(spend.spend_date, revenue.order_date) as activity_date,
        coalesce(spend.channel, revenue.channel) as channel,
        coalesce(spend.impressions, 0) as impressions,
        coalesce(spend.clicks, 0) as clicks,
        coalesce(spend.spend, 0) as spend,
        coalesce(revenue.order_count, 0) as order_count,
        coalesce(revenue.net_revenue, 0) as net_revenue
    from spend
    full outer join revenue
        on spend.spend_date = revenue.order_date and spend.channel = revenue.channel
)

select
    joined.activity_date,
    joined.channel,
    channels.channel_group,
    channels.is_paid,
    joined.impressions,
    joined.clicks,
    joined.spend,
    joined.order_count,
    joined.net_revenue,
    case when joined.spend > 0 then round(joined.net_revenue / joined.spend, 4) end as roas,
    case when joined.order_count > 0 then round(joined.spend / joined.order_count, 2) end as cost_per_order
from joined
left join {{ ref('channels') }} as channels on channels.channel = joined.channel
