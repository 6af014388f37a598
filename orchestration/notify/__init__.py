"""Alerts: notifiers (webhook, Slack, PagerDuty), routing by owner or tag, delivery within a deadline."""
