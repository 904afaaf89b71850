"""dbvitals' engine, connectors and built-in checks. Never imports textual or console."""
