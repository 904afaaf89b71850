"""dbvitals' user interfaces: the headless CLI and the Textual console."""
