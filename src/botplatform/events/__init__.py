"""Domain events: recorded once, delivered to webhook endpoints and streamed to dashboards."""
