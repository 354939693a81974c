"""The browser console: pages and forms over the same admin, delivery and reporting functions as the CLI."""
