"""`dbvitals demo`: disposable local servers seeded with the problems dbvitals exists to find."""
