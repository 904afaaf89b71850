"""Everything dbvitals changes on a server, as one pipeline (pipeline.py) with one journal
(journal.py) and its planners: fix and undo (checks.fixes), cancel and terminate (kill.py)."""
