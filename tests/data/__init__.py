"""Test data: files (schemas, configs) and the small checks the fix tests drive."""
