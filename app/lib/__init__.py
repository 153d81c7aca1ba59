"""Cross-cutting HTTP concerns shared by every domain: errors, auth, tenancy, correlation, paging."""
