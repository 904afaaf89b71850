"""The PostgreSQL schema lint: one rule per module class, registered with the pack."""
