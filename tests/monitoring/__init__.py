"""Monitoring: websocket_stats, the structured log records, the opt-in operations app."""
