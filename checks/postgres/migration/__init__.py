"""`dbvitals migration`: judge a migration file against the live PostgreSQL before it runs.

parse splits the files with PostgreSQL's own parser; locks holds the manual's lock tables as data;
catalog reads the live catalog and statistics (read-only); analyze judges each statement;
console.formats.migration_report renders the result. The migration itself is never executed."""
