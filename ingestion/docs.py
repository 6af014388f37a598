"""Descriptions of the raw tables and their columns, written into the generated dbt sources."""

from __future__ import annotations

DLT_COLUMNS = {
    "_dlt_load_id": "dlt load that last wrote this row (epoch seconds as text); the freshness clock.",
    "_dlt_id": "dlt's unique row id.",
}

TABLE_DOCS: dict[str, dict[str, str]] = {
    "raw_shop.customers": {
        "": "Shop customers as the operational database holds them; one row per customer, latest version.",
        "id": "Customer id (primary key).",
        "first_name": "First name.",
        "last_name": "Last name.",
        "email": "Email address as entered; may be missing or oddly cased.",
        "country": "ISO country code of the shipping address; changes when a customer moves.",
        "created_at": "When the customer signed up.",
        "updated_at": "Last change in the operational database; the incremental cursor.",
    },
    "raw_shop.products": {
        "": "Product catalogue.",
        "id": "Product id (primary key).",
        "sku": "Stock keeping unit.",
        "name": "Product name.",
        "category": "Product category.",
        "price": "Current list price in EUR.",
        "created_at": "When the product was listed.",
        "updated_at": "Last change; the incremental cursor.",
    },
    "raw_shop.orders": {
        "": "Orders, one row per order, latest status.",
        "id": "Order id (primary key).",
        "customer_id": "Customer who placed the order; a few legacy rows point to unknown customers.",
        "status": "placed, shipped, completed or returned; legacy clients send odd case and whitespace.",
        "utm_source": "Marketing channel the order is attributed to.",
        "ordered_at": "When the order was placed.",
        "updated_at": "Last status change; the incremental cursor.",
    },
    "raw_shop.order_items": {
        "": "Order lines: one row per product in an order.",
        "id": "Order item id (primary key).",
        "order_id": "Order the line belongs to.",
        "product_id": "Product ordered.",
        "quantity": "Units ordered.",
        "unit_price": "Price per unit in EUR at order time.",
        "updated_at": "Last change; the incremental cursor.",
    },
    "raw_shop.payments": {
        "": "Payments; some arrive days after their order, a few refunds are booked as negative amounts.",
        "id": "Payment id (primary key).",
        "order_id": "Order paid.",
        "method": "card, paypal, bank_transfer or gift_card.",
        "amount": "Amount paid in EUR.",
        "status": "Payment status.",
        "paid_at": "When the payment was captured.",
        "updated_at": "Last change; the incremental cursor.",
    },
    "raw_marketing.ad_spend": {
        "": "Daily ad spend per campaign from the ad platforms' CSV exports.",
        "spend_date": "Day of the spend.",
        "channel": "Channel; matches orders.utm_source.",
        "campaign_id": "Campaign id.",
        "campaign_name": "Campaign name.",
        "impressions": "Ad impressions.",
        "clicks": "Ad clicks.",
        "spend": "Spend in EUR.",
    },
}
